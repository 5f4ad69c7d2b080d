"""SAE evaluation (``radinterp eval``): reconstruction and sparsity per token kind, fidelity
with the model (CE-loss and KL scores beside zero-ablation), k-sparse probing and absorption;
every number beside a random SAE of the same shape and L0."""

from eval.sae_eval.config import EvalConfig
from eval.sae_eval.run import run_eval

__all__ = ["EvalConfig", "run_eval"]
