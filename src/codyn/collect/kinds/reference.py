"""``reference``: code compared with a reference answer by CodeBLEU (translation, refinement).

Two templates of paper 000 (appendix A.7.4), chosen by the fields: with ``source_language``
it is Code Translation (``code`` from ``source_language`` to the task's ``language``), without
it Code Refinement (remove the bugs in ``code``). A whole ``prompt`` is sent as it is.

The score is CodeBLEU (Ren et al. 2020; the ``codebleu`` package, equal weights of n-gram,
weighted n-gram, syntax and data-flow match) of the code extracted from the reply against
``reference``, in the task's ``language``: one of `CODEBLEU_LANGUAGES`, each parsed by its
tree-sitter grammar package.
"""

from __future__ import annotations

from typing import Any

from codyn.collect.extract import canonical_language, display_name, extract_code
from codyn.collect.kinds import CellScore, Kind, Messages, ScoringContext, register_kind
from codyn.collect.kinds._fields import check_fields
from codyn.collect.tasks import Task
from codyn.errors import CodynError

TRANSLATION_TEMPLATE = (
    "Task: Translate the following code from {source} to {target}.\n\n{code}\n\n"
    "Translate this code to {target}, maintaining the same functionality and following "
    "{target}'s best practices."
)
"""Paper 000, appendix A.7.4, Code Translation."""

REFINEMENT_TEMPLATE = (
    "Task: Remove the bugs in the following code.\n\n"
    "Original Code (All the function and variable names are normalized):\n\n{code}\n\n"
    "Provide a refined bug-free version."
)
"""Paper 000, appendix A.7.4, Code Refinement."""

CODEBLEU_LANGUAGES = (
    "python", "java", "c_sharp", "javascript", "c", "cpp", "go", "rust", "ruby", "php",
)  # fmt: skip
"""The languages codebleu 0.7 parses (with the tree-sitter grammars codyn depends on)."""


def codebleu(reference: str, candidate: str, language: str) -> dict[str, float]:
    """CodeBLEU of ``candidate`` against ``reference`` and its four components.

    CodeBLEU = 0.25 BLEU + 0.25 weighted BLEU (keywords weigh 1, other tokens 0.2) + 0.25
    AST subtree match + 0.25 data-flow match (Ren et al. 2020). As in the reference code, a
    reference without data flow counts that term as 1.
    """
    language = canonical_language(language)
    if language not in CODEBLEU_LANGUAGES:
        raise CodynError(
            f"CodeBLEU has no grammar for {language!r}; it knows {', '.join(CODEBLEU_LANGUAGES)}"
        )
    try:
        from codebleu import calc_codebleu
        from codebleu.utils import get_tree_sitter_language

        get_tree_sitter_language(language)
    except (ImportError, TypeError) as exc:  # TypeError: a grammar built for tree-sitter>=0.23
        raise CodynError(
            f"CodeBLEU cannot load the {language} grammar ({exc}); install codebleu==0.7.0, "
            f"tree-sitter 0.22 and the tree-sitter-{language.replace('_', '-')} version "
            "pinned in codyn's pyproject.toml"
        ) from None
    result = calc_codebleu([reference], [candidate], lang=language)
    return {key: float(value) for key, value in result.items()}


def reference_prompt(task: Task) -> str:
    """The prompt: ``prompt`` as given, else the translation or refinement template."""
    if task.prompt:
        return task.prompt
    code = str(task.fields["code"]).strip("\n")
    if task.fields.get("source_language"):
        target = task.fields.get("target_language") or display_name(task.language)
        source = display_name(task.fields["source_language"])
        return TRANSLATION_TEMPLATE.format(source=source, target=target, code=code)
    return REFINEMENT_TEMPLATE.format(code=code)


@register_kind("reference")
class ReferenceKind(Kind):
    """Code scored by CodeBLEU against a reference (Code Translation, Code Refinement)."""

    def check(self, task: Task) -> None:
        check_fields(task, ("code",), ("source_language", "target_language"))
        if not task.reference or not task.reference.strip():
            raise ValueError("reference: give the reference code CodeBLEU compares with")
        language = canonical_language(task.language)
        if language not in CODEBLEU_LANGUAGES:
            raise ValueError(
                f"language: CodeBLEU has no grammar for {task.language!r} "
                f"(it knows {', '.join(CODEBLEU_LANGUAGES)})"
            )
        target = task.fields.get("target_language")
        if target and canonical_language(target) != language:
            raise ValueError(
                f"language: target_language is {target!r} but language is {task.language!r}; "
                f"set language to {canonical_language(target)!r}"
            )
        if task.hidden_tests or task.visible_tests:
            raise ValueError("hidden_tests: a reference task has no tests (it has a reference)")

    def messages(self, task: Task) -> Messages:
        return [{"role": "user", "content": reference_prompt(task)}]

    def score(self, task: Task, response: str, context: ScoringContext) -> CellScore:
        assert task.reference is not None
        code = extract_code(response, language=task.language)
        if not code.strip():
            return CellScore(score=0.0, error="no code in the reply")
        parts: dict[str, Any] = codebleu(task.reference, code, task.language)
        outcome = {"set": "reference", "status": "scored", **parts}
        return CellScore(score=parts["codebleu"], outcomes=[outcome])
