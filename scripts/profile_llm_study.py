"""How well the local models profile prompts with `codyn.profile.llm` (DynaRoute Tables 1-2).

    python scripts/profile_llm_study.py                   # both local models, 40 prompts
    python scripts/profile_llm_study.py --models qwen-coder --answers

Each model is served by llama.cpp on one thread with a 2048-token window, as
`codyn.bench.local` serves it. 40 hand-labelled prompts (a domain and a level each, the
labeller's judgement of DynaRoute's level descriptions) are profiled one at a time after
one warm-up call (excluded: it reads the instruction into the server's cache); the output is
the category and level accuracy, the share that fell back, and the p50 / p99 latency of one
decision, per model, as JSON (``--answers`` adds each raw answer).
"""

from __future__ import annotations

import argparse
import json
import time

PROMPTS = [
    ("Write a Python function that returns the n-th Fibonacci number.", "Code Generation", 1),
    ("Implement an LRU cache in Java with O(1) get and put.", "Code Generation", 2),
    ("Write a thread-safe bounded queue in C++ with condition variables.", "Code Generation", 3),
    ("Fix the bug: def add(a, b): return a - b", "Debugging Assistance", 1),
    (
        "My Flask app returns 500 only in production; the logs show a KeyError.",
        "Debugging Assistance",
        2,
    ),
    ("Is this valid JavaScript? const x = [1, 2, 3;", "Syntax Check", 1),
    ("Explain what this line does: squares = [x * x for x in range(10)]", "Code Explanation", 1),
    (
        "Find the shortest path in a weighted graph with negative edges; which algorithm?",
        "Algorithm",
        2,
    ),
    ("Design a URL shortener that serves 10,000 requests per second.", "System Design", 3),
    ("Translate 'good morning, how are you?' into Spanish.", "Language Translation", 1),
    (
        "Translate into French, keeping the legal tone: The party shall indemnify the vendor.",
        "Language Translation",
        2,
    ),
    ("Summarize the plot of Romeo and Juliet in two sentences.", "Summarization", 1),
    ("Write a short poem about autumn leaves.", "Creative Writing", 2),
    (
        "Write a 1,000-word science-fiction story with an unreliable narrator.",
        "Creative Writing",
        3,
    ),
    ("Convert this list into a markdown table: apples 3, pears 5, plums 2.", "Text Formatting", 1),
    ("What is the molar mass of sulfuric acid (H2SO4)?", "Chemistry", 1),
    ("Balance the redox equation MnO4- + Fe2+ -> Mn2+ + Fe3+ in acid.", "Chemistry", 2),
    ("What is the function of mitochondria in a cell?", "Biology", 1),
    ("How does CRISPR-Cas9 find and cut its target DNA sequence?", "Biology", 2),
    ("Explain Newton's second law with an example of a car braking.", "Physics", 1),
    ("Derive the energy levels of a particle in a 1D infinite potential well.", "Physics", 3),
    ("What is 17 times 23?", "Mathematics", 1),
    ("Prove that there are infinitely many prime numbers.", "Mathematics", 2),
    ("Prove that every bounded monotone sequence of reals converges.", "Mathematics", 3),
    ("What is the difference between TCP and UDP?", "Computer Science", 1),
    ("How much load can a steel beam of 6 m span carry before it yields?", "Engineering", 2),
    ("What is the difference between inflation and deflation?", "Economics", 1),
    ("Analyse how a central bank rate rise affects exchange rates and exports.", "Economics", 3),
    ("Draft a contract clause limiting liability for a software vendor.", "Law", 2),
    ("Write a go-to-market plan for a B2B SaaS startup.", "Business", 2),
    ("Who was the first emperor of Rome?", "History", 1),
    ("Why did the Western Roman Empire fall? Weigh the main theories.", "History", 3),
    ("What is the capital of Australia?", "Geography", 1),
    ("What did Kant mean by the categorical imperative?", "Philosophy", 2),
    ("How does social media use affect teenagers' sense of community?", "Sociology", 2),
    ("What does it mean when Mercury is in retrograde for a Gemini?", "Astrology", 1),
    ("What are the common symptoms of iron deficiency?", "Health", 1),
    ("If all bloops are razzies and all razzies are lazzies, are all bloops lazzies?", "Logic", 1),
    ("How many moons does Mars have?", "Facts", 1),
    ("Who painted the Mona Lisa?", "General Knowledge", 1),
]


def study(name: str, show_answers: bool) -> dict[str, object]:
    from codyn.bench.local import local_servers
    from codyn.catalog import CatalogModel
    from codyn.profile.evaluation import evaluate_profiles
    from codyn.profile.llm import LLMProfiler, parse_profile

    with local_servers()[name] as server:
        model = CatalogModel(name=name, api_base=server.api_base, price_in=0, price_out=0)
        profiler = LLMProfiler(model, timeout_s=120, on_error="raise")
        profiler.answer("Say hello.")
        answers, latencies = [], []
        for text, _, _ in PROMPTS:
            start = time.perf_counter()
            answers.append(profiler.answer(text))
            latencies.append(time.perf_counter() - start)
    profiles = [parse_profile(a, profiler.taxonomy) for a in answers]
    taxonomy = profiler.taxonomy
    result = evaluate_profiles(
        name,
        profiles,
        [c for _, c, _ in PROMPTS],
        [lv for _, _, lv in PROMPTS],
        [taxonomy.main_category(c) for _, c, _ in PROMPTS],
        fallback=taxonomy.fallback,
        latencies_s=latencies,
    )
    summary: dict[str, object] = {
        "model": name,
        "n_prompts": result.n_prompts,
        "category_accuracy": result.category_accuracy,
        "level_accuracy": result.level_accuracy,
        "fallback_share": result.fallback_share,
        "clean_share": sum(p.confidence == 1.0 for p in profiles) / len(profiles),
        "latency_ms": result.latency_ms,
        "per_main_category": result.per_task,
    }
    if show_answers:
        summary["answers"] = [
            {"prompt": t, "label": [c, lv], "answer": a, "profile": p.to_dict()}
            for (t, c, lv), a, p in zip(PROMPTS, answers, profiles, strict=True)
        ]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="qwen-coder,smollm2", help="comma-separated")
    parser.add_argument("--answers", action="store_true", help="print every raw answer")
    args = parser.parse_args()
    for name in args.models.split(","):
        print(json.dumps(study(name.strip(), args.answers), indent=1), flush=True)


if __name__ == "__main__":
    main()
