"""codyn.registry.Registry: registration, clear errors, and discovery of a package's modules."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from codyn.errors import CodynError
from codyn.registry import Registry


@pytest.fixture
def widgets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry[object]]:
    """A registry over an empty package: discovery finds nothing to import."""
    (tmp_path / "no_widgets_pkg").mkdir()
    (tmp_path / "no_widgets_pkg" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield Registry("widget", "no_widgets_pkg")
    sys.modules.pop("no_widgets_pkg", None)


class Small:
    pass


class Large:
    pass


def test_register_get_meta_names_and_contains(widgets: Registry[object]) -> None:
    assert widgets.register("small", size=1)(Small) is Small  # the decorator returns the class
    widgets.register("large")(Large)
    assert widgets.get("small") is Small and widgets.get("large") is Large
    assert widgets.meta("small") == {"size": 1} and widgets.meta("large") == {}
    widgets.meta("small")["size"] = 2  # a copy: the registered metadata does not change
    assert widgets.meta("small") == {"size": 1}
    assert widgets.names() == ["small", "large"]
    assert "small" in widgets and "medium" not in widgets


def test_a_taken_name_is_refused_but_the_same_definition_again_is_not(
    widgets: Registry[object],
) -> None:
    widgets.register("small")(Small)
    with pytest.raises(ValueError, match="widget 'small' is already registered by Small"):
        widgets.register("small")(Large)
    redefined = type("Small", (), {"__module__": Small.__module__, "__qualname__": "Small"})
    assert widgets.register("small")(redefined) is redefined  # a module imported again
    assert widgets.get("small") is redefined


@pytest.mark.parametrize("name", ["", "a:b", "a=b", " padded"])
def test_invalid_names_are_refused(widgets: Registry[object], name: str) -> None:
    with pytest.raises(ValueError, match="invalid widget name"):
        widgets.register(name)


def test_an_unknown_name_lists_the_known_ones(widgets: Registry[object]) -> None:
    widgets.register("small")(Small)
    widgets.register("large")(Large)
    with pytest.raises(CodynError, match=r"unknown widget 'medium'; known widgets: small, large$"):
        widgets.get("medium")
    with pytest.raises(CodynError, match="unknown widget 'medium'"):
        widgets.meta("medium")


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A throwaway package ``gadgets_pkg`` on sys.path: a registry, two families in their own
    modules, a private module, and a module whose dependency is missing."""
    root = tmp_path / "gadgets_pkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "base.py").write_text(
        "from codyn.registry import Registry\nGADGETS = Registry('gadget', 'gadgets_pkg')\n"
    )
    for name in ("alpha", "beta"):
        (root / f"{name}.py").write_text(
            "from gadgets_pkg.base import GADGETS\n"
            f"@GADGETS.register({name!r}, module={name!r})\n"
            f"class {name.title()}:\n    pass\n"
        )
    (root / "_private.py").write_text("raise RuntimeError('private modules are not imported')\n")
    (root / "needs_gpu.py").write_text("import a_package_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "gadgets_pkg"
    for module in [m for m in sys.modules if m.split(".")[0] == "gadgets_pkg"]:
        del sys.modules[module]


def test_a_lookup_imports_the_package_modules_once(package: str) -> None:
    from gadgets_pkg.base import GADGETS

    assert "gadgets_pkg.alpha" not in sys.modules  # nothing imported before a lookup
    assert GADGETS.get("beta").__name__ == "Beta"
    assert GADGETS.meta("alpha") == {"module": "alpha"}
    assert sorted(GADGETS.names()) == ["alpha", "beta"]
    assert "gadgets_pkg._private" not in sys.modules
    with pytest.raises(
        CodynError,
        match=r"unknown gadget 'gamma'; known gadgets: .*"
        r"\(could not import gadgets_pkg\.needs_gpu: No module named",
    ):
        GADGETS.get("gamma")
