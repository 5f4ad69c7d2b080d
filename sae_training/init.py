"""Initialisation: random weights, then data-dependent statistics computed over the global
batch (all ranks agree); and folding the input scale back into the weights at the end."""

from __future__ import annotations

import itertools

import torch

from radinterp.sae import SparseAutoencoder
from sae_training.data import ActivationSource
from sae_training.distributed import DistInfo, all_reduce_


@torch.no_grad()
def init_weights(sae: SparseAutoencoder, generator: torch.Generator | None = None) -> None:
    """Unit-norm random decoder rows, encoder = decoder transpose, zero biases and threshold."""
    W = torch.randn(sae.d_sae, sae.d_in, generator=generator)  # (d_sae, d_in)
    W /= W.norm(dim=1, keepdim=True)
    sae.W_dec.copy_(W)
    sae.W_enc.copy_(W.t())
    sae.b_enc.zero_()
    sae.b_dec.zero_()
    sae.threshold.zero_()


@torch.no_grad()
def global_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over the rows of all ranks' ``x`` (B, d) -> (d,)."""
    buf = torch.cat([x.double().sum(0), torch.tensor([float(x.shape[0])], dtype=torch.float64,
                                                      device=x.device)])
    all_reduce_(buf)
    return (buf[:-1] / buf[-1]).to(x.dtype)


@torch.no_grad()
def geometric_median(x: torch.Tensor, max_iter: int = 100, tol: float = 1e-5) -> torch.Tensor:
    """Weiszfeld's algorithm over all ranks' rows of ``x`` (B, d) -> (d,)."""
    guess = global_mean(x).double()
    xd = x.double()
    for _ in range(max_iter):
        w = 1.0 / (xd - guess).norm(dim=1).clamp_min(1e-8)  # (B,)
        buf = torch.cat([(w.unsqueeze(1) * xd).sum(0), w.sum().reshape(1)])
        all_reduce_(buf)
        new = buf[:-1] / buf[-1]
        done = float((new - guess).norm()) < tol * max(1.0, float(guess.norm()))
        guess = new
        if done:
            break
    return guess.to(x.dtype)


B_DEC_INITS = {
    "geometric_median": geometric_median,
    "mean": global_mean,
    "zeros": lambda x: torch.zeros(x.shape[1], dtype=x.dtype, device=x.device),
}


@torch.no_grad()
def estimate_input_scale(
    source: ActivationSource, batch_size: int, info: DistInfo, seed: int, device: torch.device,
    n_batches: int = 8,
) -> float:
    """Scale ``s`` with E||s x||^2 = d_in, from the first batches of epoch 0 on all ranks."""
    total = torch.zeros(2, dtype=torch.float64, device=device)
    batches = source.iter_batches(batch_size, rank=info.rank, world_size=info.world_size,
                                  seed=seed, epoch=0)
    for batch in itertools.islice(batches, n_batches):
        b = batch.to(device).double()
        finite = torch.isfinite(b).all(dim=1)
        total[0] += b[finite].pow(2).sum()
        total[1] += float(finite.sum())
    all_reduce_(total)
    if total[1] == 0 or total[0] <= 0:
        raise ValueError("cannot estimate the activation norm: no finite, non-zero rows in the "
                         "first batches; check the store or use --normalize none")
    mean_sq = float(total[0] / total[1])
    return (source.d_in / mean_sq) ** 0.5


@torch.no_grad()
def fold_input_scale(sae: SparseAutoencoder, scale: float) -> None:
    """Fold a training-time input scaling ``x -> scale * x`` into the weights.

    Afterwards the SAE reads and reconstructs raw activations; pre-activations, codes and
    the threshold are unchanged.
    """
    sae.W_enc.mul_(scale)
    sae.W_dec.div_(scale)
    sae.b_dec.div_(scale)
