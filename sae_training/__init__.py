"""Sparse-autoencoder training (Matryoshka BatchTopK), single process or torch.distributed.

``Trainer(TrainConfig(...), source, out_dir).fit()`` trains on any ``ActivationSource``
(``radinterp.store`` stores, in-memory tensors), calibrates the inference threshold on rows
held out of the source (``calibrate``), and writes an SAE folder that sae-lens and
``radinterp.sae.load_sae`` load. Everything only training needs is here: BatchTopK selection
over ranks (``batchtopk``), the sparse kernels (``kernels``), initialisation and the decoder
constraint. CLI: ``radinterp train`` / ``python -m sae_training``.
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
