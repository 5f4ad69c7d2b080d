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
from sae_training.batchtopk import encode_batchtopk, select_batch_topk
from sae_training.kernels import SparseCodes, grouped_decode

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"


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


class _GlobalTop:
    """The ``n`` largest positive entries of a stream of (B, d_sae) pre-activation batches,
    with their (row, latent) positions: exact, holding O(n) values at a time."""

    def __init__(self, n: int, d_sae: int, device: torch.device) -> None:
        self.n, self.d_sae = n, d_sae
        self.vals = torch.empty(0, device=device)  # (<= n,) unsorted
        self.flat = torch.empty(0, dtype=torch.long, device=device)  # row * d_sae + latent

    def add(self, pre: torch.Tensor, row0: int, guess: float) -> None:
        """Merge batch ``pre`` (B, d_sae) whose first row is row ``row0`` of the slice."""
        if self.vals.numel() == self.n:  # only entries above the current n-th can enter
            flat = torch.nonzero(pre.view(-1) > self.vals.min()).squeeze(1)  # (C,)
            vals = pre.view(-1)[flat]
        else:  # this batch's own top n (all its positives if fewer): nothing is missed
            sel = select_batch_topk(pre, self.n, lower_bound=guess)
            flat, vals = sel.rows * self.d_sae + sel.cols, sel.pre_vals
        vals = torch.cat([self.vals, vals])
        flat = torch.cat([self.flat, flat + row0 * self.d_sae])
        if vals.numel() > self.n:
            top = vals.topk(self.n, sorted=False)
            vals, flat = top.values, flat[top.indices]
        self.vals, self.flat = vals, flat

    def threshold(self) -> float:
        """The n-th largest positive entry; 0 when fewer than n were positive."""
        return float(self.vals.min()) if self.vals.numel() == self.n else 0.0

    def codes(self, batch: int) -> SparseCodes:
        """The kept entries as codes of a (batch, d_sae) matrix, sorted by (row, latent)."""
        flat, order = self.flat.sort()
        rows = torch.div(flat, self.d_sae, rounding_mode="floor")
        return SparseCodes(rows, flat - rows * self.d_sae, self.vals[order], batch, self.d_sae)


def _decode(sae: SparseAutoencoder, codes: SparseCodes) -> torch.Tensor:
    """Reconstruction (B, d_in) from sparse codes (no (B, d_sae) matrix on any device)."""
    (part,) = grouped_decode(codes, sae.W_dec, [sae.d_sae], mode="sparse")  # (B, d_in)
    return part + sae.b_dec


@torch.no_grad()
def calibrate(sae: SparseAutoencoder, held_out: torch.Tensor, batch_size: int) -> Calibration:
    """Set ``sae.threshold`` from ``held_out`` (H, d_in), in the SAE's input space, and
    measure both forms there. Rows holding NaN/inf are dropped (with a warning).

    One pass over the slice in batches of ``batch_size``: one encoder matmul per row gives
    the BatchTopK form of the batch and feeds the slice-wide top ``k * H``, whose entries are
    the JumpReLU codes of the slice.
    """
    x = held_out.to(sae.W_enc.device, torch.float32)
    finite = torch.isfinite(x).all(dim=1)
    if not bool(finite.all()):
        log.warning("dropping %d held-out rows with NaN/inf before threshold calibration",
                    int((~finite).sum()))
        x = x[finite]
    if x.shape[0] == 0:
        raise ValueError("no finite held-out rows to calibrate the threshold on; fix the "
                         "store's last shard or raise --held-out-tokens")
    H, k = x.shape[0], sae.cfg.k_int
    batch = min(batch_size, H)
    top = _GlobalTop(k * H, sae.d_sae, x.device)
    btk = _Quality(sae.d_in)
    sample = x[:256]  # a first lower bound for the selection (only speed depends on it)
    lo = 0.8 * select_batch_topk(sae.preacts(sample).float(), k * sample.shape[0]).tau
    for row0 in range(0, H, batch):
        xb = x[row0:row0 + batch]  # (B, d_in)
        pre = sae.preacts(xb).float()  # (B, d_sae)
        sel = select_batch_topk(pre, k * xb.shape[0], lower_bound=lo)
        codes = sel.codes(sel.pre_vals, xb.shape[0], sae.d_sae)
        btk.add(xb, _decode(sae, codes), int(sel.rows.numel()))
        top.add(pre, row0, guess=0.5 * sel.tau)
        lo = 0.8 * sel.tau
    tau = top.threshold()
    # JumpReLU keeps pre > threshold; one float below tau also keeps the entries equal to it
    below = torch.nextafter(torch.tensor(tau), torch.tensor(-1.0)) if tau > 0 else torch.tensor(0.0)
    sae.threshold.fill_(float(below))
    jr = _Quality(sae.d_in)
    jr.add(x, _decode(sae, top.codes(H)), int(top.vals.numel()))
    result = Calibration(float(sae.threshold[0]), H, float(sae.cfg.k), batch, btk.stats(),
                         jr.stats())
    log.info("threshold %.4g from %d held-out rows: L0 %.1f (BatchTopK %.1f), explained "
             "variance %.4f (BatchTopK %.4f)", result.threshold, H, result.jumprelu.l0,
             result.batchtopk.l0, result.jumprelu.explained_variance,
             result.batchtopk.explained_variance)
    return result


@torch.no_grad()
def measure_forms(
    sae: SparseAutoencoder, x: torch.Tensor, batch_size: int
) -> tuple[FormStats, FormStats]:
    """(BatchTopK form in batches of ``batch_size``, JumpReLU form with the SAE's own
    threshold) on the rows of ``x`` (N, d_in), e.g. activations neither training nor
    calibration saw."""
    btk, jr = _Quality(sae.d_in), _Quality(sae.d_in)
    for row0 in range(0, x.shape[0], batch_size):
        xb = x[row0:row0 + batch_size]  # (B, d_in)
        enc = encode_batchtopk(sae, xb)
        btk.add(xb, _decode(sae, enc.codes), int(enc.codes.vals.numel()))
        z = sae.encode(xb)  # (B, d_sae)
        jr.add(xb, sae.decode(z), int((z != 0).sum()))
    return btk.stats(), jr.stats()


def write_calibration(out_dir: str | Path, calibration: Calibration) -> Path:
    """Write ``calibration.json`` into the SAE folder."""
    path = Path(out_dir) / CALIBRATION_FILE
    write_json_atomic(path, calibration.to_dict())
    return path
