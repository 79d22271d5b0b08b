"""The LLM profiler (DynaRoute section 2.1): the instruction, the answer parser on hand-written
answers, outages as one-line errors or fallbacks, and, marked ``backend``, Qwen2.5-Coder-0.5B
served by llama.cpp profiling labelled prompts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from codyn.bench.local import STRONG, LlamaServer, free_port, qwen_coder_path
from codyn.catalog import CatalogModel
from codyn.errors import CodynError
from codyn.profile.llm import (
    CLEAN,
    COARSE,
    NO_LEVEL,
    UNLABELLED,
    UNPARSED,
    LLMProfiler,
    clip,
    instruction,
    parse_profile,
    request,
)
from codyn.profile.taxonomy import LEVELS, Profile, Taxonomy, load_taxonomy

TAXONOMY = load_taxonomy()
MISC = TAXONOMY.fallback

ANSWERS = [
    # clean: both fields labelled
    ("Category: Chemistry\nLevel: 1", Profile("Chemistry", 1, CLEAN)),
    ("category:  code generation \nlevel:3", Profile("Code Generation", 3, CLEAN)),
    ("**Category:** Debugging Assistance\n**Level:** 2", Profile("Debugging Assistance", 2, CLEAN)),
    ("Category: Code-Generation.\nLevel: 2.", Profile("Code Generation", 2, CLEAN)),
    ("Category: History, Level: 2", Profile("History", 2, CLEAN)),
    ("Category: Chemistry Level: 3", Profile("Chemistry", 3, CLEAN)),
    ("Category: Code Generation (Python)\nLevel: 2", Profile("Code Generation", 2, CLEAN)),
    ("Category: Miscellaneous\nLevel: 1", Profile(MISC, 1, CLEAN)),
    ("Main category: Code-related\nDomain: Algorithm\nLevel: 3", Profile("Algorithm", 3, CLEAN)),
    (
        "Sure! Here is the classification.\nCategory: Law\nLevel: 3\nIt needs legal expertise.",
        Profile("Law", 3, CLEAN),
    ),
    # JSON, plain or fenced
    ('{"category": "Language Translation", "level": 1}', Profile("Language Translation", 1, CLEAN)),
    ('```json\n{"domain": "Physics", "difficulty": "hard"}\n```', Profile("Physics", 3, CLEAN)),
    ("{'category': 'Summarization', 'level': '2'}", Profile("Summarization", 2, CLEAN)),
    # levels as words, names and prefixed digits
    ("Category: Biology\nLevel: two", Profile("Biology", 2, CLEAN)),
    ("Category: Biology\nDifficulty: moderate", Profile("Biology", 2, CLEAN)),
    ("Category: Biology\nLevel: L3", Profile("Biology", 3, CLEAN)),
    ("Category: Biology\nLevel: Simple / Factual", Profile("Biology", 1, CLEAN)),
    ("Category: Biology\nLevel: 2 (Moderate)", Profile("Biology", 2, CLEAN)),
    ("Category: Biology\nLevel: Advanced", Profile("Biology", 3, CLEAN)),
    # synonyms
    ("Category: Programming\nLevel: 2", Profile("Code Generation", 2, CLEAN)),
    ("Category: Math\nLevel: 3", Profile("Mathematics", 3, CLEAN)),
    ("Category: Poetry\nLevel: 1", Profile("Creative Writing", 1, CLEAN)),
    ("Category: 'Health'\nLevel: '1'", Profile("Health", 1, CLEAN)),
    # plurals either way
    ("Category: Algorithms\nLevel: 3", Profile("Algorithm", 3, CLEAN)),
    ("Category: Fact\nLevel: 1", Profile("Facts", 1, CLEAN)),
    # one of the two only in free text
    ("Chemistry 2", Profile("Chemistry", 2, UNLABELLED)),
    ("Mathematics, Level: 3", Profile("Mathematics", 3, UNLABELLED)),
    ("Code Generation\nLevel: 2", Profile("Code Generation", 2, UNLABELLED)),
    ("A Geography question, level one.", Profile("Geography", 1, UNLABELLED)),
    ("Category: Physics\nThis is an L3 question.", Profile("Physics", 3, UNLABELLED)),
    # a domain, no usable level
    ("Chemistry", Profile("Chemistry", 2, NO_LEVEL)),
    ("Category: Biology", Profile("Biology", 2, NO_LEVEL)),
    ("Category: Biology\nLevel: 5", Profile("Biology", 2, NO_LEVEL)),
    ("Category: Biology\nLevel 1 is simple, level 3 is complex.", Profile("Biology", 2, NO_LEVEL)),
    # a main category only: the fallback domain, the level kept
    ("Category: Science and Technology\nLevel: 3", Profile(MISC, 3, COARSE)),
    ("Category: Code-related\nLevel: 1", Profile(MISC, 1, COARSE)),
    ("Category: language tasks", Profile(MISC, 2, COARSE)),
    # nothing placed: the fallback domain
    ("Law, Business, Economics\nLevel: 3", Profile(MISC, 3, UNPARSED)),
    ("Syntax Check, Code Generation", Profile(MISC, 2, UNPARSED)),
    ("Category: Rome\nLevel: 1", Profile(MISC, 1, UNPARSED)),
    ("Category: Newton's Second Law\nLevel: 2", Profile(MISC, 2, UNPARSED)),
    ("Category: Newton's laws of Physics\nLevel: 2", Profile(MISC, 2, UNPARSED)),
    ("The capital of Australia is Canberra.", Profile(MISC, 2, UNPARSED)),
    ("Romeo and Juliet is a tale of love, fate and the law.", Profile(MISC, 2, UNPARSED)),
    ("The Treaty of Versailles was signed in 1919.", Profile(MISC, 2, UNPARSED)),
    ("Category: 1\nLevel: 2", Profile(MISC, 2, UNPARSED)),
    ("", Profile(MISC, 2, UNPARSED)),
]


@pytest.mark.parametrize(("answer", "expected"), ANSWERS, ids=[a[:40] for a, _ in ANSWERS])
def test_parse_profile(answer: str, expected: Profile) -> None:
    assert parse_profile(answer, TAXONOMY) == expected


def test_a_synonym_counts_only_where_the_taxonomy_has_its_domain() -> None:
    small = Taxonomy({"Code": ["Code Generation"], "Other": ["Misc"]}, fallback="Misc")
    assert parse_profile("Category: Math\nLevel: 3", small) == Profile("Misc", 3, UNPARSED)
    assert parse_profile("Category: Coding\nLevel: 3", small) == Profile(
        "Code Generation", 3, CLEAN
    )


def test_a_user_taxonomys_level_names_are_read() -> None:
    custom = Taxonomy(
        {"All": ["Chat", "Misc"]},
        fallback="Misc",
        levels={1: "Trivial: one step", 2: "Routine: a few steps", 3: "Research: open-ended"},
    )
    assert parse_profile("Category: chat\nLevel: research", custom) == Profile("Chat", 3, CLEAN)
    assert parse_profile("Category: chat\nLevel: routine", custom) == Profile("Chat", 2, CLEAN)


def test_the_instruction_lists_domains_levels_and_format_but_no_main_category() -> None:
    text = instruction(TAXONOMY)
    for domains in TAXONOMY.categories.values():
        assert ", ".join(domains) in text
    for description in TAXONOMY.levels.values():
        assert description in text
    for main in TAXONOMY.categories:
        assert main not in text
    assert "Category: <one domain>\nLevel: <1, 2 or 3>" in text
    example = text.split("For example:\n")[1]
    assert parse_profile(example, TAXONOMY) == Profile(MISC, 2, CLEAN)


def test_a_long_prompt_is_clipped_to_its_head_and_tail() -> None:
    text = "QUESTION-START " + "x" * 10_000 + " QUESTION-END"
    clipped = clip(text, 600)
    assert len(clipped) == 600
    assert clipped.startswith("QUESTION-START ") and clipped.endswith(" QUESTION-END")
    assert "[...]" in clipped
    assert clip("short", 600) == "short"
    message = request(text, 600)
    assert clipped in message and len(message) < 700


def test_bad_settings_are_one_line_errors() -> None:
    model = CatalogModel(name="m", api_base="http://127.0.0.1:1/v1", price_in=0, price_out=0)
    with pytest.raises(CodynError, match="concurrency"):
        LLMProfiler(model, concurrency=0)
    with pytest.raises(CodynError, match="on_error"):
        LLMProfiler(model, on_error="ignore")  # type: ignore[arg-type]


# -- a real outage: nothing listens on the port ---------------------------------------------


@pytest.fixture
def unreachable() -> CatalogModel:
    return CatalogModel(
        name="down-model", api_base=f"http://127.0.0.1:{free_port()}/v1", price_in=0, price_out=0
    )


def test_a_backend_outage_is_one_line_naming_the_model(unreachable: CatalogModel) -> None:
    profiler = LLMProfiler(unreachable, retries=1, timeout_s=5)
    with pytest.raises(CodynError) as caught:
        profiler.profile_one("What is the capital of France?")
    message = str(caught.value)
    assert message.startswith("profiler model down-model failed after 2 tries: ")
    assert "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_profile_falls_back_through_an_outage_and_counts_it(unreachable: CatalogModel) -> None:
    profiler = LLMProfiler(unreachable, retries=0, timeout_s=5, concurrency=3)
    profiles = profiler.profile(["one", "two", "three", "four"])
    assert profiles == [Profile(MISC, 2, UNPARSED)] * 4
    assert profiler.failures == 4
    assert profiler.last_error is not None
    assert profiler.last_error.startswith("profiler model down-model failed: ")


def test_profile_raises_through_an_outage_when_asked(unreachable: CatalogModel) -> None:
    profiler = LLMProfiler(unreachable, retries=0, timeout_s=5, on_error="raise")
    with pytest.raises(CodynError, match="profiler model down-model failed"):
        profiler.profile(["one", "two"])


# -- a real model: Qwen2.5-Coder-0.5B on llama.cpp ---------------------------------------------

LABELLED = [
    ("Write a Python function that returns the n-th Fibonacci number.", "Code Generation"),
    ("Translate 'good morning, how are you?' into Spanish.", "Language Translation"),
    ("What is the molar mass of sulfuric acid (H2SO4)?", "Chemistry"),
    ("Who was the first emperor of Rome?", "History"),
    ("Prove that there are infinitely many prime numbers.", "Mathematics"),
    ("Write a short poem about autumn leaves.", "Creative Writing"),
    ("What is the capital of Australia?", "Geography"),
    ("Fix the bug: def add(a, b): return a - b", "Debugging Assistance"),
    ("Explain Newton's second law with an example of a car braking.", "Physics"),
    ("What is the difference between inflation and deflation?", "Economics"),
]


@pytest.fixture(scope="module")
def qwen() -> Iterator[CatalogModel]:
    """Qwen2.5-Coder-0.5B alone (the more capable local model) on a 2048-token window."""
    with LlamaServer(qwen_coder_path(), STRONG) as server:
        yield CatalogModel(name=STRONG, api_base=server.api_base, price_in=0, price_out=0)


@pytest.mark.backend
def test_qwen_profiles_labelled_prompts_into_the_taxonomy(qwen: CatalogModel) -> None:
    profiler = LLMProfiler(qwen, concurrency=2)
    texts = [text for text, _ in LABELLED]
    profiles = profiler.profile(texts)
    assert profiler.failures == 0
    assert all(p.category in TAXONOMY.domains and p.level in LEVELS for p in profiles)
    placed = [p for p in profiles if p.confidence >= UNLABELLED]
    assert len(placed) >= 8, profiles
    right = sum(p.category == label for p, (_, label) in zip(profiles, LABELLED, strict=True))
    assert right >= 5, profiles
    assert [profiler.profile_one(t) for t in texts[:3]] == profiles[:3]  # temperature 0


@pytest.mark.backend
def test_a_long_prompt_fits_the_window_once_clipped(qwen: CatalogModel) -> None:
    """400 functions (about 4500 tokens unclipped) overflow the 2048-token window."""
    code = "".join(f"def f{i}(x):\n    return x + {i}\n" for i in range(400))
    text = f"Find the bug in these functions:\n{code}\nWhy does f7(1) return 8?"
    profile = LLMProfiler(qwen, on_error="raise").profile_one(text)
    assert profile.category in TAXONOMY.domains and profile.level in LEVELS


@pytest.mark.backend
def test_a_timeout_is_one_line_naming_the_model(qwen: CatalogModel) -> None:
    profiler = LLMProfiler(qwen, timeout_s=0.001, retries=0)
    with pytest.raises(CodynError, match=r"^profiler model qwen-coder failed: .*Timeout"):
        profiler.profile_one("Write a haiku about the sea.")
    assert profiler.profile(["Write a haiku about the sea."]) == [Profile(MISC, 2, UNPARSED)]
    assert profiler.failures == 1
