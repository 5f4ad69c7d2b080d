"""Planted-finding recovery: are SAE features learned, or would random ones do as well?

- ``baselines``: ``random_like`` / ``RandomSAE`` (same shape and L0), ``shuffled_encoder``,
  ``LinearProbe``; each has ``encode(x) -> (B, n)`` like ``radinterp.sae.SparseAutoencoder``.
- ``metrics``: scopes (image / text positions), the selection / held-out split, study scores,
  AUROC- and F1-matched latents.
- ``counterfactual``: mask share and the healthy-twin drop rate.
- ``recovery``: ``evaluate_recovery`` (all of it, trained vs random vs probe) and ``summarize``.
- ``prefix_capture``: image-position activations from the prompt prefix only.
- ``curve`` and ``plot``: the grid of SAE settings (benchmarks/recovery_curve.py) and its table.

See docs/recovery.md for the definitions.
"""
