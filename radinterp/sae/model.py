"""The SAE module: Matryoshka BatchTopK during training, JumpReLU at inference.

Parameters follow the sae-lens / dictionary_learning naming and shapes:
``W_enc`` (d_in, d_sae), ``b_enc`` (d_sae,), ``W_dec`` (d_sae, d_in), ``b_dec`` (d_in,),
plus a ``threshold`` buffer (d_sae,) estimated during training. Inference encode is
``relu(pre) * (pre > threshold)`` with ``pre = (x - b_dec) @ W_enc + b_enc``, which is what
sae-lens' JumpReLU SAE and dictionary_learning's thresholded BatchTopK encode compute.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from radinterp.registry import Registry
from radinterp.sae.batchtopk import LOCAL, Collectives, select_batch_topk
from radinterp.sae.config import SAEConfig
from radinterp.sae.kernels import SparseCodes, encoder_matmul, gather_encode


@dataclasses.dataclass
class BatchTopKOutput:
    """Result of :meth:`SparseAutoencoder.encode_batchtopk`."""

    codes: SparseCodes
    """Selected latents with differentiable values."""
    pre_mm: torch.Tensor
    """(B, d_sae) float32 ``x_c @ W_enc`` without ``b_enc``, no grad (the aux-k loss reads
    dead latents here)."""
    x_c: torch.Tensor
    """(B, d_in) encoder input (``x - b_dec`` when ``apply_b_dec_to_input``), no grad."""
    tau: float
    """Global BatchTopK threshold of this batch."""
    n_selected: int
    """Entries selected over all ranks."""


class SparseAutoencoder(nn.Module):
    """A Matryoshka BatchTopK SAE; ``encode``/``decode`` are its JumpReLU inference form."""

    def __init__(self, cfg: SAEConfig, *, init: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        d_in, d_sae = cfg.d_in, cfg.d_sae
        self.W_enc = nn.Parameter(torch.empty(d_in, d_sae))
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_dec = nn.Parameter(torch.empty(d_sae, d_in))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.register_buffer("threshold", torch.zeros(d_sae))
        if init:
            self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Unit-norm random decoder rows, encoder = decoder transpose, zero biases."""
        W = torch.randn(self.cfg.d_sae, self.cfg.d_in, generator=generator)
        W /= W.norm(dim=1, keepdim=True)
        self.W_dec.copy_(W)
        self.W_enc.copy_(W.t())
        self.b_enc.zero_()
        self.b_dec.zero_()
        self.threshold.zero_()

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

    # -- training -----------------------------------------------------------------------
    def encode_batchtopk(
        self,
        x: torch.Tensor,
        *,
        lower_bound: float = 0.0,
        mode: str = "sparse",
        mm_dtype: torch.dtype | None = None,
        collectives: Collectives = LOCAL,
        batch_global: int | None = None,
    ) -> BatchTopKOutput:
        """BatchTopK codes of ``x`` (B, d_in) as sparse entries, differentiable.

        ``batch_global`` is the batch over all ranks (``collectives`` reduce over them); the
        selection keeps ``k * batch_global`` entries of the global batch.
        """
        B = x.shape[0]
        x_c = x - self.b_dec.detach() if self.cfg.apply_b_dec_to_input else x  # (B, d_in)
        pre_mm = encoder_matmul(x_c, self.W_enc, mm_dtype)  # (B, d_sae), no b_enc
        n_global = self.cfg.k_int * (batch_global if batch_global is not None else B)
        sel = select_batch_topk(pre_mm, n_global, bias=self.b_enc.detach(),
                                lower_bound=lower_bound, collectives=collectives)
        vals = self.gather(x_c, sel.rows, sel.cols, sel.pre_vals, mode=mode,
                           mm_dtype=mm_dtype)  # (nnz,)
        return BatchTopKOutput(sel.codes(vals, B, self.d_sae), pre_mm, x_c, sel.tau,
                               sel.n_selected_global)

    def gather(
        self, x_c: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, pre_vals: torch.Tensor,
        *, mode: str = "sparse", mm_dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Differentiable pre-activations at (rows, cols), from precomputed ``pre_vals``."""
        return gather_encode(
            x_c, self.W_enc, self.b_enc, self.b_dec, rows, cols, pre_vals,
            mode=mode, apply_b_dec=self.cfg.apply_b_dec_to_input, mm_dtype=mm_dtype,
        )

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale decoder rows to unit norm."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove the gradient component parallel to each (unit) decoder row."""
        g = self.W_dec.grad
        if g is None:
            return
        W = self.W_dec / self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
        g.sub_((g * W).sum(dim=1, keepdim=True) * W)

    @torch.no_grad()
    def fold_input_scale(self, scale: float) -> None:
        """Fold a training-time input scaling ``x -> scale * x`` into the weights.

        Afterwards the SAE reads and reconstructs raw activations; codes are unchanged.
        """
        self.W_enc.mul_(scale)
        self.W_dec.div_(scale)
        self.b_dec.div_(scale)


#: Architectures this module implements, by the names saved in configs: Matryoshka BatchTopK
#: (training), plain BatchTopK (one Matryoshka level) and JumpReLU (their inference form).
ARCHITECTURES: Registry[type[SparseAutoencoder]] = Registry("SAE architecture")
for _name in ("matryoshka_batchtopk", "batchtopk", "jumprelu"):
    ARCHITECTURES.add(_name, SparseAutoencoder)
