"""Rebuild the bundled demo data from LLMRouter (MIT) in ../shared/benchmarks.

Keeps every code prompt (`mbpp`, `human_eval`) and a seeded sample of up to 60 prompts per
other task, with the 9 models' prices. Run: `python scripts/build_demo_data.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from codyn.data.demo import DEMO_FILE
from codyn.data.importers import read

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "benchmarks" / "llmrouter" / "data"
TARGET = ROOT / "src" / "codyn" / "data" / "demo_data" / DEMO_FILE
CODE_TASKS = ("mbpp", "human_eval")
PER_OTHER_TASK = 60


def main() -> int:
    data = read("llmrouter", [SOURCE])
    rng = np.random.default_rng(0)
    keep: list[int] = []
    for task in sorted(set(data.tasks)):
        rows = np.flatnonzero(data.tasks == task)
        if task not in CODE_TASKS and len(rows) > PER_OTHER_TASK:
            rows = np.sort(rng.choice(rows, PER_OTHER_TASK, replace=False))
        keep.extend(rows.tolist())
    demo = data.take(sorted(keep))
    demo.source = (
        "LLMRouter (ulab-uiuc/LLMRouter @4e7a796, MIT licence): all mbpp and human_eval "
        f"prompts plus up to {PER_OTHER_TASK} per other task, 9 NVIDIA-NIM models"
    )
    demo.responses = None
    demo.save(TARGET)
    print(f"wrote {TARGET} ({TARGET.stat().st_size / 1024:.0f} KiB): {demo}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
