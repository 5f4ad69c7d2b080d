"""LLM auto-interpretability: explain and score SAE features."""
