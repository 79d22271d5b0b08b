"""DynaRoute (paper 002): explicit task profiles, benchmark Z-score tables and cost tiers.

`taxonomy` (the categories a prompt may fall in), `table` (the offline recommendation from
public benchmark scores and prices), `profilers` (an LLM asked for a category and a level, or
an embedding classifier learned from labelled prompts). The `profile` router
(`codyn.routers.profile`) joins them: profile -> category row -> cost tier by level.
"""
