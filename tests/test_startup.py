"""Start-up stays light: ``import codyn`` and ``codyn --help`` load no heavy dependency.

Each check runs a fresh interpreter (this one has imported everything already) and reads back
the top-level packages in its ``sys.modules``. Wall-clock time is not asserted: the suite runs
on loaded machines.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPORT = """
import json, sys
with open(sys.argv[1], "w") as fh:
    json.dump(sorted({name.partition(".")[0] for name in sys.modules}), fh)
"""


def loaded_packages(code: str, tmp_path: Path) -> tuple[set[str], str]:
    """Top-level packages imported by ``code`` in a fresh interpreter, and what it printed."""
    out = tmp_path / "modules.json"
    script = f"try:\n{_indent(code)}\nfinally:\n{_indent(REPORT)}"
    done = subprocess.run(
        [sys.executable, "-c", script, str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.is_file(), done.stderr
    return set(json.loads(out.read_text())), done.stdout


def _indent(code: str) -> str:
    return "\n".join(f"    {line}" for line in code.strip().splitlines())


def test_import_codyn_loads_no_heavy_dependency(tmp_path: Path) -> None:
    loaded, _ = loaded_packages("import codyn", tmp_path)
    assert "codyn" in loaded
    heavy = {"numpy", "pandas", "pyarrow", "scipy", "matplotlib", "torch", "litellm"}
    assert not loaded & heavy, f"import codyn loads {sorted(loaded & heavy)}"


def test_public_names_still_import_on_first_use(tmp_path: Path) -> None:
    loaded, printed = loaded_packages(
        "from codyn import Model, RoutingData\nprint(RoutingData.__module__, Model.__name__)",
        tmp_path,
    )
    assert printed.split() == ["codyn.data.routing", "Model"]
    assert "pandas" in loaded  # the lazy attribute did import the real class


def test_codyn_help_loads_no_heavy_dependency(tmp_path: Path) -> None:
    loaded, printed = loaded_packages(
        "from codyn.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
        tmp_path,
    )
    assert "Usage" in printed and "serve" in printed
    heavy = {"numpy", "pandas", "pyarrow", "scipy", "rich", "matplotlib", "torch", "litellm"}
    heavy |= {"fastapi", "sklearn"}
    assert not loaded & heavy, f"codyn --help loads {sorted(loaded & heavy)}"
