"""Sparse-autoencoder training (Matryoshka BatchTopK), single process or torch.distributed.

``Trainer(TrainConfig(...), source, out_dir).fit()`` trains on any ``ActivationSource``
(``radinterp.store`` stores, in-memory tensors) and writes an SAE folder that sae-lens and
``radinterp.sae.load_sae`` load. CLI: ``radinterp train`` / ``python -m sae_training``.
"""

from sae_training.config import TrainConfig
from sae_training.data import (
    ActivationSource,
    StoreActivationSource,
    TensorActivationSource,
    open_activation_source,
)
from sae_training.trainer import NonFiniteActivationError, Trainer

__all__ = [
    "ActivationSource",
    "NonFiniteActivationError",
    "StoreActivationSource",
    "TensorActivationSource",
    "TrainConfig",
    "Trainer",
    "open_activation_source",
]
