"""The built-in demo data: a small, MIT-licensed slice of LLMRouter's routing data.

Source: ulab-uiuc/LLMRouter @4e7a796 (MIT, see NOTICE): the `mbpp` and `human_eval`
code prompts plus a sample of its general tasks, 9 NVIDIA-NIM models with their prices.
Rebuild with `python scripts/build_demo_data.py` (reads ../shared/benchmarks).
"""

from __future__ import annotations

from importlib import resources

from codyn.data.routing import RoutingData

DEMO_FILE = "llmrouter_demo.parquet"


def load_demo() -> RoutingData:
    """Load the bundled demo routing data."""
    with resources.as_file(resources.files("codyn.data") / "demo_data" / DEMO_FILE) as path:
        return RoutingData.load(path)
