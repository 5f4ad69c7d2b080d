"""The records pass's running state: counts, histogram, per-study maxima, top-k and reservoir.

``Accumulator.add(studies, sae)`` takes a batch of whole studies, encodes their rows and folds
them in; ``finish()`` returns ``LatentRecords``. Top-k and reservoir are both a ``topk`` merge
of the kept (latent, study) entries with the batch's candidates: the top-k ranks by the
study's maximum activation, the reservoir by a random key per (latent, study) (keeping the
``reservoir`` largest keys of i.i.d. uniforms is a uniform sample without replacement). Only
entries a merge newly keeps get their firing positions copied (one slice each of the batch's
firing entries, sorted once per batch); entries a merge drops are deleted, so memory stays
bounded. ``Example`` objects are built at ``finish``.
"""

from __future__ import annotations

import numpy as np
import torch

from autointerp.records import N_KINDS, Example, LatentRecords, RecordsConfig
from radinterp.models.tokens import TokenKind
from radinterp.sae import SparseAutoencoder

F16_MAX = float(torch.finfo(torch.float16).max)


_INT_COLS = ("position", "kind", "token_id", "image_slot", "patch_row", "patch_col")


class _Firing:
    """Compact firing positions of one kept (latent, study): values (n,) float32 strongest
    first and the ``_INT_COLS`` metadata (n, 6) int32; an ``Example`` on demand."""

    __slots__ = ("values", "ints")

    def __init__(self, values: np.ndarray, ints: np.ndarray) -> None:
        self.values, self.ints = values, ints

    def example(self, study_id: str, latent: int, source: str) -> Example:
        c = self.ints.T
        return Example(study_id, latent, float(self.values[0]), positions=c[0].copy(),
                       values=self.values, kinds=c[1].astype(np.int8), token_ids=c[2].copy(),
                       image_slot=c[3].astype(np.int8), patch_row=c[4].astype(np.int16),
                       patch_col=c[5].astype(np.int16), source=source)


class _Kept:
    """Per latent, ``size`` (score, study) slots merged by ``topk`` plus their examples."""

    def __init__(self, d_sae: int, size: int) -> None:
        self.score = torch.full((d_sae, size), -torch.inf)  # (d_sae, size)
        self.study = torch.full((d_sae, size), -1, dtype=torch.long)  # (d_sae, size)
        self.examples: dict[tuple[int, int], _Firing] = {}

    def merge(self, score: torch.Tensor, study: torch.Tensor) -> list[tuple[int, int]]:
        """Merge candidates ``score`` (d_sae, B) of studies ``study`` (B,) (-inf: not a
        candidate); return the (latent, study) pairs newly kept."""
        d_sae, size = self.score.shape
        all_score = torch.cat([self.score, score], 1)  # (d_sae, size + B)
        all_study = torch.cat([self.study, study.expand(d_sae, -1)], 1)
        top, idx = all_score.topk(size, dim=1)  # (d_sae, size)
        kept_old = torch.zeros_like(all_score, dtype=torch.bool).scatter_(1, idx, True)[:, :size]
        dropped = (self.study >= 0) & ~kept_old  # (d_sae, size)
        for f, s in zip(torch.nonzero(dropped)[:, 0].tolist(), self.study[dropped].tolist()):
            del self.examples[(f, s)]
        self.score, self.study = top, all_study.gather(1, idx)
        self.study[top == -torch.inf] = -1
        new = (idx >= size) & (top > -torch.inf)  # (d_sae, size)
        return list(zip(torch.nonzero(new)[:, 0].tolist(), self.study[new].tolist()))

    def ordered(self, latent: int, study_ids: list[str], source: str) -> list[Example]:
        slots = [s for s in self.study[latent].tolist() if s >= 0]
        return [self.examples[(latent, s)].example(study_ids[s], latent, source) for s in slots]


class Accumulator:
    """Running state of ``build_records``; see the module docstring."""

    def __init__(self, cfg: RecordsConfig, d_sae: int, n_studies: int) -> None:
        self.cfg, self.d_sae = cfg, d_sae
        self.study_ids: list[str] = []
        self.n_tokens = 0
        self.tokens_by_kind = torch.zeros(N_KINDS, dtype=torch.long)
        self.fire_by_kind = torch.zeros(d_sae, N_KINDS, dtype=torch.long)
        self.study_modality = torch.zeros(d_sae, 3, dtype=torch.long)
        self.edges = torch.logspace(np.log10(cfg.hist_min), np.log10(cfg.hist_max),
                                    cfg.hist_bins + 1, dtype=torch.float64)
        self.hist = torch.zeros(d_sae * (cfg.hist_bins + 2), dtype=torch.long)
        self.study_max = torch.zeros(n_studies, d_sae, dtype=torch.float16)
        self.top, self.res = _Kept(d_sae, cfg.top_k), _Kept(d_sae, cfg.reservoir)
        self.gen = torch.Generator().manual_seed(cfg.seed)

    def add(self, studies: list[tuple[str, dict[str, np.ndarray], torch.Tensor]],
            sae: SparseAutoencoder) -> None:
        first = len(self.study_ids)
        self.study_ids += [sid for sid, _, _ in studies]
        meta = {c: np.concatenate([m[c] for _, m, _ in studies]) for c in studies[0][1]}
        lengths = torch.tensor([a.shape[0] for _, _, a in studies])
        local = torch.repeat_interleave(torch.arange(len(studies)), lengths)  # (N,)
        z = sae.encode(torch.cat([a for _, _, a in studies])).float()  # (N, d_sae)
        fired = z > 0  # (N, d_sae)
        kind = torch.from_numpy(meta["kind"].astype(np.int64))  # (N,)
        self.n_tokens += z.shape[0]
        self.tokens_by_kind += torch.bincount(kind, minlength=N_KINDS)
        self.fire_by_kind += torch.stack(
            [fired[kind == k].sum(0) for k in range(N_KINDS)], 1)  # (d_sae, N_KINDS)
        rows, feats = torch.nonzero(fired, as_tuple=True)
        b = torch.bucketize(z[rows, feats].double(), self.edges, right=True)  # 0: under
        self.hist += torch.bincount(feats * (self.cfg.hist_bins + 2) + b,
                                    minlength=self.hist.numel())
        B = len(studies)
        rows_of = local[:, None].expand(-1, self.d_sae)  # (N, d_sae)
        smax = torch.zeros(B, self.d_sae).scatter_reduce_(0, rows_of, z, "amax")  # (B, d_sae)
        image = (kind == TokenKind.IMAGE).float()[:, None]
        on_img = torch.zeros(B, self.d_sae).index_add_(0, local, fired * image) > 0
        on_txt = torch.zeros(B, self.d_sae).index_add_(0, local, fired * (1 - image)) > 0
        self.study_modality += torch.stack(
            [(on_img & ~on_txt).sum(0), (on_txt & ~on_img).sum(0), (on_img & on_txt).sum(0)], 1)
        self.study_max[first:first + B] = smax.clamp(max=F16_MAX).half()
        ids = torch.arange(first, first + B)
        act = smax > 0  # (B, d_sae)
        score = torch.where(act, smax, -torch.inf).T  # (d_sae, B)
        key = torch.rand(B, self.d_sae, generator=self.gen)
        rkey = torch.where(act, key, -torch.inf).T
        firings = _sorted_firings(rows.numpy(), feats.numpy(), z[rows, feats].numpy(),
                                  local.numpy(), meta, B)
        for kept, pairs in ((self.top, self.top.merge(score, ids)),
                            (self.res, self.res.merge(rkey, ids))):
            if pairs:
                kept.examples.update(firings(pairs, first, self.cfg.max_positions))

    def finish(self) -> LatentRecords:
        n = len(self.study_ids)
        return LatentRecords(
            study_ids=list(self.study_ids), n_tokens=self.n_tokens,
            tokens_by_kind=self.tokens_by_kind.numpy(), fire_by_kind=self.fire_by_kind.numpy(),
            study_modality=self.study_modality.numpy(), hist_edges=self.edges.numpy(),
            hist=self.hist.view(self.d_sae, -1).numpy(), study_max=self.study_max[:n].clone(),
            top=[self.top.ordered(f, self.study_ids, "top") for f in range(self.d_sae)],
            reservoir=[self.res.ordered(f, self.study_ids, "reservoir") for f in range(self.d_sae)],
            config=self.cfg)


def _sorted_firings(rows: np.ndarray, feats: np.ndarray, vals: np.ndarray, local: np.ndarray,
                    meta: dict[str, np.ndarray], n_studies: int):
    """A function (pairs, first study, max positions) -> {(latent, study): _Firing} over a
    batch's firing entries (rows, feats, vals: (nnz,)), sorted once by (latent, study,
    descending value) so each pair's positions are one slice."""
    key = feats.astype(np.int64) * n_studies + local[rows]  # (nnz,)
    order = np.lexsort((-vals, key))
    key, vals = key[order], vals[order].astype(np.float32)
    ints = np.stack([meta[c][rows[order]].astype(np.int32) for c in _INT_COLS], 1)  # (nnz, 6)

    def firings(pairs: list[tuple[int, int]], first: int, cap: int) -> dict:
        want = np.array([f * n_studies + (s - first) for f, s in pairs], dtype=np.int64)
        lo = np.searchsorted(key, want, "left")
        hi = np.minimum(np.searchsorted(key, want, "right"), lo + cap)
        return {p: _Firing(vals[a:b].copy(), ints[a:b].copy())
                for p, a, b in zip(pairs, lo.tolist(), hi.tolist())}

    return firings


__all__ = ["Accumulator"]
