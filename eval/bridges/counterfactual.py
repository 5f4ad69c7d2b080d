"""Counterfactuals: the matched SAE feature on a phantom vs on its healthy twin.

The recovery issue's twin comparison (:mod:`eval.recovery.counterfactual`) inside the bridge.
The twins store holds the healthy twins of the store's phantoms under the same study ids
(``write_twin_jsonl`` + ``radinterp capture --token-filter image``, same model and site). For
each planted finding and encoder (trained SAE, random SAE), the feature matched to
``finding:<name>`` on image positions is compared on the report studies that have the finding:
its maximum over the frontal image's patches on the study vs on the twin; it *falls* when it
drops by at least ``min_drop`` (:func:`eval.recovery.counterfactual.drop_rate`). The same on the
report studies without the finding is the baseline (their twins lack only other findings).
The study-minus-twin map (clipped at 0) is a map source beside CSR and INSIGHT.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eval.bridges.summaries import check_sae_store
from eval.recovery.counterfactual import drop_rate
from radinterp.errors import InputError


def open_twins(path: str, sae, site: str, store_ids: Sequence[str]):
    """(twins store, ids it shares with the store); one-line errors for another model, site,
    width or set of studies."""
    from pathlib import Path

    from radinterp.store import open_store

    if not Path(path).exists():
        raise InputError(f"--twins {path} does not exist",
                         "capture the twins (write_twin_jsonl + radinterp capture) or drop --twins")
    twins = open_store(path)
    try:
        check_sae_store(sae, twins, site)
    except InputError as e:
        raise InputError(f"--twins {path}: {e.what}",
                         "capture the twins with the store's model and site") from None
    shared = sorted(set(map(str, twins.studies())) & set(store_ids))
    if not shared:
        raise InputError(f"none of the {len(twins.studies())} studies in --twins {path} is in the store "
                         "(the twins of other studies)",
                         "write_twin_jsonl of the store's phantoms and capture them")
    return twins, shared


def twin_drops(findings: Sequence[str], positives: np.ndarray, study_ids: Sequence[str],
               matched: dict[str, dict[str, int]], maps: dict[str, dict[str, np.ndarray]],
               twin_maps: dict[str, dict[str, np.ndarray]], columns: dict[str, dict[int, int]],
               min_drop: float) -> dict:
    """Per finding and encoder: drop rate of the matched feature on positive studies with a twin
    and on negative ones (baseline), pairs counted; studies without a twin counted.

    ``positives`` (N, F) bool over ``study_ids``; ``matched[e]['finding:<f>']`` the feature;
    ``maps[e][sid]`` / ``twin_maps[e][sid]`` (n_chosen, n, n) with ``columns[e][feature]`` the
    row of a feature."""
    out: dict = {}
    for j, f in enumerate(findings):
        res: dict = {"n_positive": int(positives[:, j].sum())}
        for e in maps:
            feat = matched[e].get(f"finding:{f}")
            if feat is None:
                res[e] = {"skipped": "no matched finding feature"}
                continue
            c = columns[e][feat]
            r: dict = {"feature": int(feat)}
            for side, rows in (("positive", positives[:, j]), ("negative", ~positives[:, j])):
                ids = [s for s, k in zip(study_ids, rows, strict=True) if k and s in maps[e]]
                have = [s for s in ids if s in twin_maps[e]]
                cur = np.array([maps[e][s][c].max() for s in have], np.float64)
                twin = np.array([twin_maps[e][s][c].max() for s in have], np.float64)
                rate, n = drop_rate(cur, twin, min_drop) if have else (float("nan"), 0)
                r[side] = {"drop_rate": None if not np.isfinite(rate) else rate, "n_pairs": n,
                           "n_no_twin": len(ids) - len(have),
                           "mean_study": float(cur.mean()) if have else None,
                           "mean_twin": float(twin.mean()) if have else None}
            res[e] = r
        out[f] = res
    return out


def summarise_drops(drops: dict) -> dict:
    """Mean drop rate over findings scored by both encoders: positives and negatives."""
    keep = [f for f, v in drops.items()
            if all(v.get(e, {}).get("positive", {}).get("drop_rate") is not None for e in ("trained", "random"))]

    def mean(e: str, side: str) -> float | None:
        vals = [drops[f][e][side]["drop_rate"] for f in keep if drops[f][e][side]["drop_rate"] is not None]
        return float(np.mean(vals)) if vals else None
    return {"n_findings": len(keep),
            **{e: {"positive": mean(e, "positive"), "negative": mean(e, "negative")}
               for e in ("trained", "random")}}


__all__ = ["open_twins", "summarise_drops", "twin_drops"]
