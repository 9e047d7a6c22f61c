"""The benchmark: the agent against baselines on the same simulated traffic, and how fast it runs (evaluate.py)."""
