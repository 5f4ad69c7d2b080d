"""The SAE module: Matryoshka BatchTopK during training, JumpReLU at inference.

Parameters follow the sae-lens / dictionary_learning naming and shapes:
``W_enc`` (d_in, d_sae), ``b_enc`` (d_sae,), ``W_dec`` (d_sae, d_in), ``b_dec`` (d_in,),
plus a ``threshold`` buffer (d_sae,), calibrated after training on held-out activations
(``sae_training.calibrate``). Inference encode is ``relu(pre) * (pre > threshold)`` with
``pre = (x - b_dec) @ W_enc + b_enc``, which is what sae-lens' JumpReLU SAE and
dictionary_learning's thresholded BatchTopK encode compute. Training (BatchTopK selection,
sparse kernels, decoder constraints) lives in ``sae_training``.
"""

from __future__ import annotations

import torch
from torch import nn

from radinterp.registry import Registry
from radinterp.sae.config import SAEConfig


class SparseAutoencoder(nn.Module):
    """A Matryoshka BatchTopK SAE; ``encode``/``decode`` are its JumpReLU inference form."""

    def __init__(self, cfg: SAEConfig) -> None:
        """All parameters start at zero: load them (``load_sae``) or train them
        (``sae_training``, which also holds the training-time initialisation)."""
        super().__init__()
        self.cfg = cfg
        d_in, d_sae = cfg.d_in, cfg.d_sae
        self.W_enc = nn.Parameter(torch.zeros(d_in, d_sae))
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_dec = nn.Parameter(torch.zeros(d_sae, d_in))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.register_buffer("threshold", torch.zeros(d_sae))

    @property
    def d_in(self) -> int:
        return self.cfg.d_in

    @property
    def d_sae(self) -> int:
        return self.cfg.d_sae

    # -- inference --------------------------------------------------------------------
    def preacts(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder pre-activations, (..., d_sae)."""
        x_c = x - self.b_dec if self.cfg.apply_b_dec_to_input else x
        return x_c @ self.W_enc + self.b_enc

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """JumpReLU codes (..., d_sae): ``relu(pre) * (pre > threshold)``."""
        pre = self.preacts(x.to(self.W_enc.dtype))
        return pre.relu() * (pre > self.threshold).to(pre.dtype)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction (..., d_in) from codes (..., d_sae)."""
        return z.to(self.W_dec.dtype) @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


#: Architectures this module implements, by the names saved in configs: Matryoshka BatchTopK
#: (training), plain BatchTopK (one Matryoshka level) and JumpReLU (their inference form).
ARCHITECTURES: Registry[type[SparseAutoencoder]] = Registry("SAE architecture")
for _name in ("matryoshka_batchtopk", "batchtopk", "jumprelu"):
    ARCHITECTURES.add(_name, SparseAutoencoder)
