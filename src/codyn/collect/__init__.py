"""Collecting routing data: run a task file's prompts through catalog models, score every
answer (tests in `codyn.sandbox`, CodeBLEU, label accuracy, an LLM judge), and keep every
outcome in a `RoutingData`.

`tasks` reads and validates task files (JSONL); `kinds` turns a task into chat messages and
scores an answer, one registered kind per task shape; the collection engine runs the
(task, model, sample) jobs, resumable and cached.
"""
