"""DynaRoute's LLM profiler (paper 002, section 2.1): ask a model for a prompt's domain and level.

The instruction (`instruction`) lists the taxonomy's domains, one main category a line, and
the three level descriptions, and asks for two lines, ``Category: <domain>`` and
``Level: <1|2|3>``; the prompt follows, quoted and clipped (`request`), at temperature 0, so
the same model gives the same profile. Any catalog model works (a LiteLLM string or an
OpenAI-compatible ``api_base``); DynaRoute uses Qwen 2.5 3B. `parse_profile` reads the answer;
a prompt the answer does not place goes to the taxonomy's fallback domain (section 2.3).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, TypeVar

from codyn.catalog import CatalogModel
from codyn.errors import CodynError
from codyn.profile.taxonomy import LEVELS, Profile, Taxonomy, load_taxonomy

logger = logging.getLogger(__name__)
T = TypeVar("T")

FALLBACK_LEVEL = 2
"""The level of a prompt the answer does not grade: level 2 routes to the Moderate cost tier,
at most one tier from the true one, where level 1 would send a hard prompt to the cheapest
model and level 3 an easy one to the dearest."""

MAX_PROMPT_CHARS = 1500
"""Prompt characters sent at most. With the instruction (about 200 tokens) and the answer,
1500 characters fit a 2048-token window (the local llama.cpp servers') even at one character
a token; code runs at 2-3, prose at about 4. A prompt's domain and level show in its opening
and its question, and a short request keeps the decision fast (on one CPU thread
Qwen2.5-Coder-0.5B read a 1840-token request in 40 s)."""

CLEAN, UNLABELLED, NO_LEVEL, COARSE, UNPARSED = 1.0, 0.75, 0.5, 0.25, 0.0
"""Confidences of a parse (`parse_profile`): a domain and a level, each from its field
(``Category:``, ``"level":``); both found, one only in the free text; a domain and no level
(level 2); a main category only (the fallback domain); no domain (the fallback domain), also
the profile of a failed call."""

DOMAIN_SYNONYMS = {
    "math": "Mathematics",
    "maths": "Mathematics",
    "translation": "Language Translation",
    "legal": "Law",
    "medical": "Health",
    "medicine": "Health",
    "programming": "Code Generation",
    "coding": "Code Generation",
    "poetry": "Creative Writing",
}
"""Words for a domain that are not its name, used only where the taxonomy has that domain:
the domain's own word shortened or as an adjective (Math, Translation, Legal, Medical), and
the words Qwen2.5-Coder-0.5B answered for writing code and a poem (Programming, Poetry)."""

LEVEL_WORDS = {
    "one": 1, "easy": 1, "basic": 1, "low": 1,
    "two": 2, "medium": 2, "intermediate": 2,
    "three": 3, "hard": 3, "difficult": 3, "high": 3, "expert": 3,
}  # fmt: skip
"""Number words and the common names of three difficulty grades; the taxonomy's own level
names ("Simple / Factual", "Moderate / Standard", ...) are added per taxonomy."""

CATEGORY_LABEL = re.compile(
    r"\b(?:category|domain)\b[\"'\s]*[:=]\s*[\"']?"
    r"([^\n\",;{}\[\]]*?)(?=\s*\b(?:level|difficulty)\b|[\n\",;{}\[\]]|$)",
    re.IGNORECASE,
)
LEVEL_LABEL = re.compile(
    r"\b(?:level|difficulty)\b[\"'\s]*[:=]\s*[\"']?([^\n\",;{}\[\]]*)", re.IGNORECASE
)
"""A field's value runs to the end of its line, a JSON delimiter or the next field; a
single quote may end it (``'Law',``) or belong to it (``Newton's``), so it is stripped after."""
LEVEL_MENTION = re.compile(
    r"\b(?:(?:level|difficulty)\s*[-#]?\s*([123]|one|two|three)|l([123]))\b", re.IGNORECASE
)
NUMBER = re.compile(r"(?<![\w.])\d+(?![\w.])")
MARKUP = re.compile(r"[*`#]")


def instruction(taxonomy: Taxonomy) -> str:
    """The system prompt: the task, the domains (one main category a line), the levels, the
    format and an example of it.

    The main categories' names are left out: given them, Qwen2.5-Coder-0.5B answered "Science
    and Technology" for half of a test set. The example is the fallback profile: without one
    the models often missed the format, and SmolLM2-135M copies whatever example it is shown
    (given "Law", it answered Law for half of the study's prompts), so a copied example lands
    where an unplaced prompt would anyway.
    """
    groups = "\n".join(", ".join(domains) for domains in taxonomy.categories.values())
    levels = "\n".join(f"{level}: {taxonomy.levels[level]}" for level in sorted(taxonomy.levels))
    return (
        "You classify a user's prompt; you never answer it.\n"
        f"Domains, one group a line:\n{groups}\n"
        f"Levels:\n{levels}\n"
        "Reply with exactly two lines:\n"
        "Category: <one domain>\n"
        "Level: <1, 2 or 3>\n"
        f"For example:\nCategory: {taxonomy.fallback}\nLevel: {FALLBACK_LEVEL}"
    )


def request(text: str, max_chars: int) -> str:
    """The user message: the prompt quoted (clipped to ``max_chars``) and a reminder of the
    reply's form; unquoted, Qwen2.5-Coder-0.5B wrote the summary or poem it was asked for."""
    quoted = clip(text, max_chars)
    return f'Prompt to classify:\n"""\n{quoted}\n"""\nReply with the Category and Level lines only.'


def clip(text: str, max_chars: int) -> str:
    """``text`` within ``max_chars``: its head (two thirds) and tail (a third, where a long
    prompt often puts its question) around a marker."""
    if len(text) <= max_chars:
        return text
    marker = "\n[...]\n"
    head = (max_chars - len(marker)) * 2 // 3
    tail = max_chars - len(marker) - head
    return text[:head] + marker + text[len(text) - tail :]


def parse_profile(answer: str, taxonomy: Taxonomy) -> Profile:
    """The profile an answer gives; never raises. Markdown marks (``*``, backticks, ``#``)
    are dropped first.

    - Domain: the first ``Category:`` / ``Domain:`` field (a line, or a JSON or YAML key)
      whose value names one, with case, spaces and punctuation ignored (`Taxonomy.canonical`):
      the whole value, else a part of it (``Code Generation (Python)``), a final "s" ignored
      (``Algorithms``), or a `DOMAIN_SYNONYMS` word. With no such field at all (a field whose
      value names no domain is the model's answer, however wrong): an answer that is just a
      domain, or, when the answer gives a level, the one domain it names (an echo of the list
      names many; a prompt answered instead of classified gives no level).
    - A main category alone (``Code-related``) is not a domain: the taxonomy names no
      representative of one, and its first domain would put every "Science and Technology"
      prompt on Biology's row, so it is the fallback domain, its level kept.
    - Level: the first ``Level:`` / ``Difficulty:`` field whose value holds a number 1-3
      (``2``, ``L3``, ``2 (Moderate)``; another number is no level) or a grade word (``two``,
      ``moderate``, ``hard``, the taxonomy's own names); else the one level the answer
      mentions (``level two``, ``L3``), else its one bare number if it is 1-3 (``Chemistry 2``).
    - Nothing placed: the fallback domain, section 2.3's, with level `FALLBACK_LEVEL`.

    Confidence: `CLEAN` when both came from their fields, `UNLABELLED` when one came from the
    free text, `NO_LEVEL` for a domain without a level, `COARSE` for a main category,
    `UNPARSED` when no domain was found (the level, if any, is still read).
    """
    text = MARKUP.sub("", answer)
    category = _labelled_domain(text, taxonomy)
    category_labelled = category is not None
    level = _labelled_level(text, taxonomy)
    level_labelled = level is not None
    if level is None:
        mentioned = {_level_value(a or b, taxonomy) for a, b in LEVEL_MENTION.findall(text)}
        level = _only_mention(mentioned - {None} or {int(n) for n in NUMBER.findall(text)})
        level = level if level in LEVELS else None
    fielded = bool(CATEGORY_LABEL.search(text))
    if category is None and not fielded:
        category = taxonomy.canonical(text.strip(" .\n"))
    if category is None and not fielded and level is not None:
        category = _only_mention(_mentioned_domains(text, taxonomy))
    if category is None:
        coarse = any(_main_category(v.strip("'"), taxonomy) for v in CATEGORY_LABEL.findall(text))
        return Profile(taxonomy.fallback, level or FALLBACK_LEVEL, COARSE if coarse else UNPARSED)
    if level is None:
        return Profile(category, FALLBACK_LEVEL, NO_LEVEL)
    return Profile(category, level, CLEAN if category_labelled and level_labelled else UNLABELLED)


def _only_mention(found: set[T]) -> T | None:
    """The one thing an answer mentions, or None for none or several."""
    return next(iter(found)) if len(found) == 1 else None


def _domain(value: str, taxonomy: Taxonomy) -> str | None:
    """The domain a field's value names: the whole value, or (unless it is a main category)
    one of its parts."""
    value = value.strip(" '")
    found = taxonomy.canonical(value)
    if found is not None or _main_category(value, taxonomy):
        return found
    for part in re.split(r"[()/|:\-–—]", value):
        part = part.strip(" .!'")
        found = _singular_match(part, taxonomy) if part else None
        if found is None:
            synonym = DOMAIN_SYNONYMS.get(part.lower())
            found = taxonomy.canonical(synonym) if synonym else None
        if found is not None:
            return found
    return None


def _singular_match(text: str, taxonomy: Taxonomy) -> str | None:
    """The domain ``text`` names, a final "s" on either ignored ("Algorithms", "Fact")."""
    wanted = _key(text).removesuffix("s")
    for domain in taxonomy.domains:
        if _key(domain).removesuffix("s") == wanted:
            return domain
    return None


def _labelled_domain(text: str, taxonomy: Taxonomy) -> str | None:
    for value in CATEGORY_LABEL.findall(text):
        found = _domain(value, taxonomy)
        if found is not None:
            return found
    return None


def _mentioned_domains(text: str, taxonomy: Taxonomy) -> set[str]:
    """Every domain named anywhere in ``text`` as whole words (case-insensitive)."""
    return {
        domain
        for domain in taxonomy.domains
        if re.search(rf"(?<!\w){re.escape(domain)}(?!\w)", text, re.IGNORECASE)
    }


def _main_category(value: str, taxonomy: Taxonomy) -> bool:
    wanted = _key(value)
    return bool(wanted) and any(_key(main) == wanted for main in taxonomy.categories)


def _key(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _labelled_level(text: str, taxonomy: Taxonomy) -> int | None:
    for value in LEVEL_LABEL.findall(text):
        found = _level_value(value, taxonomy)
        if found is not None:
            return found
    return None


def _level_value(value: str, taxonomy: Taxonomy) -> int | None:
    """1-3 from a field's value: its first number (``2``, ``L3``, ``Level 2 (Moderate)``) if
    it is 1-3, else its first grade word."""
    number = re.search(r"\d+", value)
    if number is not None:
        level = int(number.group())
        return level if level in LEVELS else None
    words = _grade_words(taxonomy)
    for word in re.findall(r"[a-z]+", value.lower()):
        if word in words:
            return words[word]
    return None


def _grade_words(taxonomy: Taxonomy) -> dict[str, int]:
    """`LEVEL_WORDS` and the taxonomy's level names, the words before a description's
    colon (``Simple / Factual: ...`` -> simple, factual)."""
    words = dict(LEVEL_WORDS)
    for level, description in taxonomy.levels.items():
        names = description.split(":", 1)[0] if ":" in description else ""
        for word in re.findall(r"[a-z]+", names.lower()):
            words[word] = level
    return words


class LLMProfiler:
    """Profiles prompts by asking ``model`` (DynaRoute's classifier LLM).

    `profile_one` raises a one-line `CodynError` naming the model when the call fails (backend
    down, timeout, refused) after ``retries`` more tries of a retriable failure. `profile`
    serves a router: by default (``on_error="fallback"``) a failed prompt gets the fallback
    profile with confidence 0, counted in ``failures`` and kept in ``last_error``, so live
    routing goes on through a profiler outage; ``on_error="raise"`` raises instead (a study
    must not score an outage as wrong answers). ``concurrency`` prompts are asked at once.
    """

    def __init__(
        self,
        model: CatalogModel,
        taxonomy: Taxonomy | None = None,
        *,
        max_tokens: int = 32,
        timeout_s: float = 30.0,
        concurrency: int = 1,
        retries: int = 1,
        max_prompt_chars: int = MAX_PROMPT_CHARS,
        on_error: Literal["fallback", "raise"] = "fallback",
    ) -> None:
        if concurrency < 1 or retries < 0 or max_tokens < 1 or max_prompt_chars < 1:
            raise CodynError(
                "LLMProfiler: concurrency, max_tokens and max_prompt_chars must be at least 1, "
                "retries at least 0"
            )
        if on_error not in ("fallback", "raise"):
            raise CodynError(f"LLMProfiler: on_error must be fallback or raise, got {on_error!r}")
        self.model = model
        self.taxonomy = taxonomy if taxonomy is not None else load_taxonomy()
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self.retries = retries
        self.max_prompt_chars = max_prompt_chars
        self.on_error = on_error
        self.instruction = instruction(self.taxonomy)
        self.failures = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def answer(self, text: str) -> str:
        """The model's raw answer for one prompt (clipped to ``max_prompt_chars``)."""
        from codyn.collect.calls import CallFailed, RetryPolicy
        from codyn.collect.executors import JudgeCall

        messages = [
            {"role": "system", "content": self.instruction},
            {"role": "user", "content": request(text, self.max_prompt_chars)},
        ]
        retry = RetryPolicy(attempts=self.retries + 1, base_s=0.5, cap_s=4.0)
        ask = JudgeCall(self.model, self.max_tokens, self.timeout_s, retry)
        try:
            return ask(messages)
        except CallFailed as failure:
            tries = f" after {failure.attempts} tries" if failure.attempts > 1 else ""
            raise CodynError(
                f"profiler model {self.model.name} failed{tries}: {failure.message}"
            ) from None

    def profile_one(self, text: str) -> Profile:
        """One prompt's profile; a failed call raises `CodynError`."""
        return parse_profile(self.answer(text), self.taxonomy)

    def profile(self, texts: Sequence[str]) -> list[Profile]:
        """Every prompt's profile, in order; failures as the class docstring says."""
        if self.concurrency == 1 or len(texts) <= 1:
            return [self._profile_or_fallback(t) for t in texts]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(texts))) as pool:
            return list(pool.map(self._profile_or_fallback, texts))

    def _profile_or_fallback(self, text: str) -> Profile:
        try:
            return self.profile_one(text)
        except CodynError as error:
            if self.on_error == "raise":
                raise
            with self._lock:
                self.failures += 1
                self.last_error = str(error)
            logger.warning("%s; profiled as %s", error, self.taxonomy.fallback)
            return Profile(self.taxonomy.fallback, FALLBACK_LEVEL, UNPARSED)
