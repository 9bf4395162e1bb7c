"""How a sample is made: independent samples (the default, the generation stage as it is), or
step-level search guided by a process reward model (`beam`, `dvts`).

`jobs.strategy.search` holds the search's step logic as pure functions over plain dataclasses
(no engine, no Ray, no store): which nodes to expand next, which children to keep, and which
trajectories become the N samples of a problem. A driver calls it once per step for all the
problems of a unit.
"""
