"""After training: set the saved SAE's JumpReLU threshold so that it is the SAE we trained.

Training encodes with BatchTopK: the ``k * B`` largest positive pre-activations of a batch.
Its inference form is JumpReLU with one global threshold. A running average of the
per-step BatchTopK thresholds lags the codes while the weights still move, and the saved
SAE then reaches a much lower L0 and explained variance than the SAE that was trained. So
after training we take the threshold from held-out rows the trainer never saw: with
``H`` rows, it is the ``k * H``-th largest positive pre-activation, i.e. BatchTopK over the
whole slice as one batch (the global threshold dictionary_learning estimates, here from
the final weights). On the slice the JumpReLU codes then equal those BatchTopK codes, so the
mean L0 is ``k``. One value for every latent keeps the sae-lens JumpReLU format (a vector of
equal values) and the dictionary_learning one (a scalar).

``calibration.json`` in the SAE folder records the threshold, the slice size, and both forms'
explained variance and L0 on the slice (BatchTopK in batches of the training batch size).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch

from radinterp.config import write_json_atomic
from radinterp.sae import SparseAutoencoder
from sae_training.batchtopk import encode_batchtopk
from sae_training.kernels import grouped_decode

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
_CHUNK_ELEMENTS = 1 << 24  # rows per chunk * d_sae: bounds the (rows, d_sae) pre-activations


@dataclasses.dataclass
class FormStats:
    """Reconstruction quality of one encode form on the held-out slice."""

    explained_variance: float
    """1 - SSE / total variance of the slice (the training metric's definition)."""
    l0: float
    """Mean number of active latents per row."""
    mse: float
    """Mean over rows of the squared reconstruction error (summed over d_in)."""


@dataclasses.dataclass
class Calibration:
    """The calibrated threshold and what it gives on the held-out slice."""

    threshold: float
    """The global JumpReLU threshold written into every entry of ``sae.threshold``."""
    held_out_tokens: int
    """Finite held-out rows the threshold was taken from and the forms were measured on."""
    k: float
    """The SAE's BatchTopK ``k`` (the L0 the threshold targets)."""
    batch_size: int
    """Batch of the BatchTopK form's measurement (the training batch, at most the slice)."""
    batchtopk: FormStats
    """The trained (BatchTopK) form on the slice."""
    jumprelu: FormStats
    """The saved (JumpReLU) form on the slice, with ``threshold``."""

    def to_dict(self) -> dict[str, Any]:
        return {"method": "global_batchtopk", **dataclasses.asdict(self)}


class _Quality:
    """Running sums for explained variance and L0 over row chunks."""

    def __init__(self, d_in: int) -> None:
        self.sse = 0.0
        self.active = 0
        self.rows = 0
        self.sum_x = torch.zeros(d_in, dtype=torch.float64)
        self.sum_sq = 0.0

    def add(self, x: torch.Tensor, x_hat: torch.Tensor, active: int) -> None:
        x64 = x.double().cpu()
        self.sse += float((x.float() - x_hat.float()).pow(2).sum())
        self.active += active
        self.rows += x.shape[0]
        self.sum_x += x64.sum(0)
        self.sum_sq += float(x64.pow(2).sum())

    def stats(self) -> FormStats:
        total = self.sum_sq - float(self.sum_x.pow(2).sum()) / self.rows
        return FormStats(1.0 - self.sse / max(total, 1e-12), self.active / self.rows,
                         self.sse / self.rows)


def _chunks(x: torch.Tensor, rows: int):
    for lo in range(0, x.shape[0], rows):
        yield x[lo:lo + rows]


@torch.no_grad()
def global_threshold(sae: SparseAutoencoder, x: torch.Tensor) -> float:
    """The ``k * H``-th largest positive pre-activation over the rows of ``x`` (H, d_in).

    Returns 0 when fewer than ``k * H`` pre-activations are positive (then every positive
    one is kept, as BatchTopK would).
    """
    n = max(1, round(sae.cfg.k * x.shape[0]))
    top = torch.empty(0, device=x.device)  # the n largest so far, unsorted
    for xb in _chunks(x, max(1, _CHUNK_ELEMENTS // sae.d_sae)):
        pre = sae.preacts(xb.to(sae.W_enc.dtype)).float().view(-1)  # (rows * d_sae,)
        floor = top.min() if top.numel() == n else pre.new_zeros(())
        merged = torch.cat([top, pre[pre > floor]])
        top = merged.topk(n, sorted=False).values if merged.numel() > n else merged
    return float(top.min()) if top.numel() == n else 0.0


@torch.no_grad()
def measure_forms(
    sae: SparseAutoencoder, x: torch.Tensor, batch_size: int, *, mode: str = "sparse"
) -> tuple[FormStats, FormStats]:
    """(BatchTopK form in batches of ``batch_size``, JumpReLU form) on the rows of ``x``."""
    btk, jr = _Quality(sae.d_in), _Quality(sae.d_in)
    for xb in _chunks(x, batch_size):  # (B, d_in)
        enc = encode_batchtopk(sae, xb, mode=mode)
        (part,) = grouped_decode(enc.codes, sae.W_dec, [sae.d_sae], mode=mode)  # (B, d_in)
        btk.add(xb, part + sae.b_dec, int(enc.codes.vals.numel()))
    for xb in _chunks(x, max(1, _CHUNK_ELEMENTS // sae.d_sae)):
        z = sae.encode(xb)  # (rows, d_sae)
        jr.add(xb, sae.decode(z), int((z != 0).sum()))
    return btk.stats(), jr.stats()


@torch.no_grad()
def calibrate(
    sae: SparseAutoencoder, held_out: torch.Tensor, batch_size: int, *, mode: str = "sparse"
) -> Calibration:
    """Set ``sae.threshold`` from ``held_out`` (H, d_in), in the SAE's input space, and
    measure both forms there. Rows holding NaN/inf are dropped (with a warning)."""
    x = held_out.to(sae.W_enc.device, torch.float32)
    finite = torch.isfinite(x).all(dim=1)
    if not bool(finite.all()):
        log.warning("dropping %d held-out rows with NaN/inf before threshold calibration",
                    int((~finite).sum()))
        x = x[finite]
    if x.shape[0] == 0:
        raise ValueError("no finite held-out rows to calibrate the threshold on; fix the "
                         "store's last shard or raise --held-out-tokens")
    tau = global_threshold(sae, x)
    # JumpReLU keeps pre > threshold; one float below tau also keeps the entries equal to it
    below = torch.nextafter(torch.tensor(tau), torch.tensor(-1.0)) if tau > 0 else torch.tensor(0.0)
    sae.threshold.fill_(float(below))
    batch = min(batch_size, x.shape[0])
    btk, jr = measure_forms(sae, x, batch, mode=mode)
    result = Calibration(float(sae.threshold[0]), int(x.shape[0]), float(sae.cfg.k), batch,
                         btk, jr)
    log.info("threshold %.4g from %d held-out rows: L0 %.1f (BatchTopK %.1f), explained "
             "variance %.4f (BatchTopK %.4f)", result.threshold, result.held_out_tokens,
             jr.l0, btk.l0, jr.explained_variance, btk.explained_variance)
    return result


def write_calibration(out_dir: str | Path, calibration: Calibration) -> Path:
    """Write ``calibration.json`` into the SAE folder."""
    path = Path(out_dir) / CALIBRATION_FILE
    write_json_atomic(path, calibration.to_dict())
    return path
