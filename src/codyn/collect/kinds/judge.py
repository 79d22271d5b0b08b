"""``judge``: an LLM judge compares the answer with a reference model's answer (RouteLLM).

RouteLLM labels its preference data with a pairwise GPT-4 judge following MT-Bench's
practice (Zheng et al. 2023). This kind sends the judge MT-Bench's pairwise prompt
(``pair-v2``: `JUDGE_SYSTEM` and `JUDGE_PROMPT`) and reads its ``[[A]]`` / ``[[B]]`` /
``[[C]]`` (tie) verdict with `parse_verdict`.

Position bias is removed as MT-Bench recommends, by judging both orders: once with the
answer as assistant A, once as assistant B. Each order scores the answer 1 (better), 0.5
(tie) or 0 (worse) and the cell's score is their mean, in {0, 0.25, 0.5, 0.75, 1}; a judge
that always says "A" gives 0.5. Nothing is random. When either verdict cannot be read the
score is NaN and ``error`` says which reply it was: an unread verdict is no evidence either
way, and a NaN is left out of means rather than counted as a loss.

The judge is ``ScoringContext.judge`` (messages in, reply text out); `chat_judge` makes one
for any OpenAI-compatible endpoint.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from codyn.collect.extract import strip_reasoning
from codyn.collect.kinds import CellScore, Kind, Messages, ScoringContext, register_kind
from codyn.collect.tasks import Task
from codyn.errors import CodynError

JUDGE_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by "
    "two AI assistants to the user question displayed below. You should choose the assistant "
    "that follows the user's instructions and answers the user's question better. Your "
    "evaluation should consider factors such as the helpfulness, relevance, accuracy, depth, "
    "creativity, and level of detail of their responses. Begin your evaluation by comparing "
    "the two responses and provide a short explanation. Avoid any position biases and ensure "
    "that the order in which the responses were presented does not influence your decision. "
    "Do not allow the length of the responses to influence your evaluation. Do not favor "
    "certain names of the assistants. Be as objective as possible. After providing your "
    'explanation, output your final verdict by strictly following this format: "[[A]]" if '
    'assistant A is better, "[[B]]" if assistant B is better, and "[[C]]" for a tie.'
)
"""MT-Bench's pairwise judge system prompt (``pair-v2``, Zheng et al. 2023)."""

JUDGE_PROMPT = (
    "[User Question]\n{question}\n\n"
    "[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]"
)
"""MT-Bench's pairwise judge user prompt."""

ORDERS = ("answer_first", "reference_first")
"""The two positions the answer is judged in: assistant A, then assistant B."""

_DOUBLE = re.compile(r"\[\[\s*(?:assistant\s+)?(A|B|C|tie)\s*\]\]", re.IGNORECASE)
_SINGLE = re.compile(r"\[\s*(?:assistant\s+)?(A|B|C|tie)\s*\]", re.IGNORECASE)
_WORDS = re.compile(
    r"final\s+verdict\s*(?:is)?\s*[:\-]?\s*\**\s*(?:assistant\s+)?\"?(A|B|C|tie)\b", re.IGNORECASE
)


def parse_verdict(reply: str) -> str | None:
    """``"A"``, ``"B"`` or ``"C"`` (tie) from a judge's reply, None when it gives none.

    The last ``[[X]]`` wins (a judge may quote the format before its verdict; ``[[tie]]`` is
    C, ``[[Assistant A]]`` is A), then the last ``[X]`` (small models write ``[Assistant
    A]``), then "final verdict: X"; reasoning (``<think>``) is skipped.
    """
    text = strip_reasoning(reply)
    for pattern in (_DOUBLE, _SINGLE, _WORDS):
        found = pattern.findall(text)
        if found:
            verdict = found[-1].upper()
            return "C" if verdict == "TIE" else verdict
    return None


def judge_messages(question: str, answer_a: str, answer_b: str) -> Messages:
    """The judge's messages for one order (MT-Bench ``pair-v2``)."""
    prompt = JUDGE_PROMPT.format(question=question, answer_a=answer_a, answer_b=answer_b)
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": prompt}]


def verdict_score(verdict: str, order: str) -> float:
    """The answer's score from one verdict: 1 when its position wins, 0.5 for a tie."""
    if verdict == "C":
        return 0.5
    return float(verdict == ("A" if order == "answer_first" else "B"))


def chat_judge(
    model: str,
    api_base: str,
    *,
    api_key: str = "none",
    max_tokens: int = 512,
    timeout_s: float = 300.0,
) -> Callable[[Messages], str]:
    """A judge callable for an OpenAI-compatible endpoint (greedy: temperature 0, seed 0),
    so the same messages get the same verdict from a deterministic server."""
    from openai import OpenAI

    client = OpenAI(base_url=api_base, api_key=api_key, timeout=timeout_s, max_retries=1)

    def judge(messages: Messages) -> str:
        reply = client.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            temperature=0.0,
            seed=0,
            max_tokens=max_tokens,
        )
        return reply.choices[0].message.content or ""

    return judge


@register_kind("judge")
class JudgeKind(Kind):
    """The answer judged against the reference model's answer, in both orders."""

    def check(self, task: Task) -> None:
        if not task.prompt:
            raise ValueError("prompt: a judge task needs the prompt the models answer")
        if task.fields:
            raise ValueError("fields: a judge task has no template fields (give a prompt)")
        if not task.reference or not task.reference.strip():
            raise ValueError("reference: give the reference model's answer to compare with")
        if task.hidden_tests or task.visible_tests:
            raise ValueError("hidden_tests: a judge task has no tests (the judge scores it)")

    def messages(self, task: Task) -> Messages:
        assert task.prompt is not None
        return [{"role": "user", "content": task.prompt}]

    def score(self, task: Task, response: str, context: ScoringContext) -> CellScore:
        assert task.prompt is not None and task.reference is not None
        if context.judge is None:
            raise CodynError("judge tasks need a judge model (ScoringContext.judge)")
        answer = strip_reasoning(response).strip()
        if not answer:
            return CellScore(score=0.0, error="empty reply (scored 0 without the judge)")
        outcomes, scores, error = [], [], None
        for order in ORDERS:
            pair = (answer, task.reference) if order == "answer_first" else (task.reference, answer)
            reply = context.judge(judge_messages(task.prompt, *pair))
            verdict = parse_verdict(reply)
            tail = " ".join(reply.split())[-300:]
            if verdict is None:
                status = "unparsed"
                error = error or f"no [[A]]/[[B]]/[[C]] verdict in the {order} judgement: {tail!r}"
            else:
                scores.append(verdict_score(verdict, order))
                status = {1.0: "win", 0.5: "tie", 0.0: "loss"}[scores[-1]]
            outcomes.append(
                {"set": "judge", "order": order, "verdict": verdict, "status": status, "tail": tail}
            )
        score = math.nan if error else sum(scores) / len(scores)
        return CellScore(score=score, outcomes=outcomes, error=error)
