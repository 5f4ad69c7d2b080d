"""Per-study SAE feature summaries from the activation store, and maps of chosen features.

- :func:`check_sae_store`: the SAE and the store come from the same model and site (one-line
  error naming the fix otherwise).
- :func:`sample_rows`: the first rows of image and report positions (the random SAE's mean and
  sparsity are matched on them).
- :func:`study_summaries`: one pass over the store; per study and encoder, each feature's
  maximum over the frontal image's patch tokens (image slot 0) and over the report tokens
  (memory: studies x d_sae x 4 floats, e.g. 22 MB for 600 studies at d_sae 2304); and the
  mean and the max residual of the same positions (the linear probes' inputs, studies x d_model).
- :func:`feature_maps`: a second pass over the report-split studies only, keeping each chosen
  feature's activation on the (n_side, n_side) patch grid (memory: studies x chosen features).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from radinterp.errors import InputError
from radinterp.store.kinds import resolve_kinds

IMAGE, REPORT = (int(resolve_kinds([k])[0]) for k in ("image", "report"))
POOLS = {"mean": lambda x: x.mean(0), "max": lambda x: x.max(0).values}
"""How a study's residual rows (n_rows, d_model) are pooled for the linear probes: the mean (the
recovery issue's probe) and the max (the pooling the SAE features' study scores use)."""


def check_sae_store(sae, store, site: str | None) -> str:
    """The store site the SAE reads; raises :class:`InputError` when model, site or width differ."""
    sae_site, sae_model = getattr(sae.cfg, "site", None), getattr(sae.cfg, "model", None)
    site = site or sae_site
    if site is None:
        raise InputError("the SAE records no site", "pass --site with the store site it was trained on")
    if site not in store.sites:
        raise InputError(f"the store holds sites {store.sites}, not {site} (the SAE's)",
                         "pass --acts captured at the SAE's site, or the SAE trained on this store")
    if sae_site is not None and site != sae_site:
        raise InputError(f"the SAE was trained on {sae_site}, not {site}",
                         "drop --site or pass the SAE's own site")
    store_model = str(store.manifest.get("model", ""))
    if sae_model and store_model and sae_model != store_model:
        raise InputError(f"the SAE was trained on model {sae_model!r} but the store was captured "
                         f"from {store_model!r}", "pass an SAE and a store of the same model")
    if sae.d_in != store.d_model:
        raise InputError(f"the SAE reads width {sae.d_in} but the store holds {store.d_model}",
                         "pass an SAE trained on this store's model and site")
    return site


def sample_rows(store, site: str, n_rows: int) -> torch.Tensor:
    """(<= n_rows, d_model) float32: the first image (slot 0) and report rows of the store."""
    parts, have = [], 0
    for _, meta, acts in store.iter_studies(site, token_kinds=["image", "report"]):
        keep = (meta["kind"] == REPORT) | ((meta["kind"] == IMAGE) & (meta["image_slot"] == 0))
        parts.append(acts[torch.from_numpy(keep)])
        have += int(keep.sum())
        if have >= n_rows:
            break
    if not parts or have == 0:
        raise InputError(f"the store holds no image or report rows at {site}",
                         "capture with --token-filter all")
    return torch.cat(parts)[:n_rows]


@dataclass
class Summaries:
    """Each feature's maximum per study and scope, for each encoder."""

    study_ids: list[str]
    """Row order."""
    values: dict[str, dict[str, np.ndarray]]
    """encoder name -> scope (image, report) -> (N, d_sae) float32; NaN where the study has no
    rows of that scope."""
    residuals: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    """pooling (mean, max) -> scope -> (N, d_model) float32 residual pooled over the scope's
    positions (the linear probes' features); NaN where the study has no rows of that scope."""

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        index = {s: i for i, s in enumerate(self.study_ids)}
        return np.array([index[s] for s in ids], dtype=np.int64)


@torch.no_grad()
def study_summaries(store, site: str, encoders: dict[str, object], progress: bool = True) -> Summaries:
    """One pass over the store: per study, max over image-slot-0 rows and over report rows (each
    encoder's features), and the mean residual of those rows."""
    ids: list[str] = []
    out: dict[str, dict[str, list[np.ndarray]]] = {n: {"image": [], "report": []} for n in encoders}
    resid: dict[str, dict[str, list[np.ndarray]]] = {p: {"image": [], "report": []} for p in POOLS}
    total = len(store.studies())
    for sid, meta, acts in tqdm(store.iter_studies(site, token_kinds=["image", "report"]),
                                total=total, desc="bridge: summaries", disable=not progress):
        ids.append(str(sid))
        scopes = {"image": (meta["kind"] == IMAGE) & (meta["image_slot"] == 0),
                  "report": meta["kind"] == REPORT}
        for scope, keep in scopes.items():
            x = acts[torch.from_numpy(keep)].float()  # (n_rows, d_model)
            for pool in POOLS:
                resid[pool][scope].append(POOLS[pool](x).numpy() if keep.any()
                                          else np.full(acts.shape[1], np.nan, np.float32))
            for name, enc in encoders.items():
                if not keep.any():
                    out[name][scope].append(np.full(enc.d_sae, np.nan, np.float32))
                    continue
                z = enc.encode(x).float()  # (n_rows, d_sae)
                out[name][scope].append(z.max(0).values.numpy())
    stack = (lambda v: np.stack(v) if v else np.zeros((0, 0), np.float32))
    return Summaries(ids, {n: {s: stack(v) for s, v in d.items()} for n, d in out.items()},
                     {p: {s: stack(v) for s, v in d.items()} for p, d in resid.items()})


@torch.no_grad()
def feature_maps(store, site: str, study_ids: Sequence[str], encoders: dict[str, object],
                 features: dict[str, Sequence[int]], progress: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """encoder -> study -> (len(features[encoder]), n_side, n_side) activation maps of the chosen
    features over the frontal image's patch grid (row-major patch_row, patch_col)."""
    maps: dict[str, dict[str, np.ndarray]] = {n: {} for n in encoders}
    want = list(study_ids)
    for sid, meta, acts in tqdm(store.iter_studies(site, want, token_kinds=["image"]), total=len(want),
                                desc="bridge: maps", disable=not progress):
        keep = meta["image_slot"] == 0
        r, c = meta["patch_row"][keep].astype(np.int64), meta["patch_col"][keep].astype(np.int64)
        side = int(max(r.max(), c.max())) + 1
        x = acts[torch.from_numpy(keep)]  # (n_patches, d_model)
        for name, enc in encoders.items():
            cols = torch.as_tensor(list(features[name]), dtype=torch.long)
            z = enc.encode(x).float()[:, cols].numpy()  # (n_patches, n_chosen)
            grid = np.zeros((len(cols), side, side), np.float32)
            grid[:, r, c] = z.T
            maps[name][str(sid)] = grid
    return maps


__all__ = ["IMAGE", "POOLS", "REPORT", "Summaries", "check_sae_store", "feature_maps", "sample_rows",
           "study_summaries"]
