"""Benchmark and test harnesses: the timing harness, router, featuriser and proxy benchmarks
behind ``codyn bench ...``, and the real local LLM backends the proxy's tests and benchmarks
run against (``python -m codyn.bench.local``). Nothing below `codyn.bench` imports it."""
