"""The recovery curve: what makes trained features beat random ones.

A grid point is one SAE training setting (:class:`CurvePoint`: studies, tokens, width, k,
training passes, layer). :func:`run_point` trains that SAE on activations of the training
phantoms (kept in memory, taken from a store captured once with every layer the grid needs)
and scores its recovery on held-out phantoms beside the random SAE and the probe
(:func:`eval.recovery.recovery.evaluate_recovery`). Each point writes
``<out>/<point.name>/recovery.json``; a finished point is skipped, so the grid resumes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from radinterp.sae.baselines import mean_l0, threshold_for_l0
from eval.recovery.metrics import ScopeActs
from eval.recovery.recovery import RecoveryConfig, evaluate_recovery
from radinterp.config import BaseConfig, write_json_atomic
from radinterp.data.study import Study

log = logging.getLogger(__name__)

RESULT_FILE = "recovery.json"
TOKEN_SETS = {"image": ["image"], "all": None}
"""Which training-store positions an SAE trains on."""


@dataclass
class CurvePoint(BaseConfig):
    """One SAE training setting of the curve."""

    n_studies: int = 200
    """Training phantoms whose activations the SAE sees."""
    tokens: str = "image"
    """Positions it trains on: ``image`` (patch tokens only) or ``all``."""
    d_sae: int = 2304
    """Latents."""
    k: int = 16
    """BatchTopK k (average active latents per token)."""
    passes: float = 20.0
    """Training passes over the training tokens."""
    layer: int = 15
    """Language-model block whose resid_post is read."""
    calibrate: bool = True
    """Set the saved SAE's threshold so its mean L0 on the training tokens is k (what the core
    will do after training, issue 13); False keeps the trainer's EMA threshold."""

    def __post_init__(self) -> None:
        if self.tokens not in TOKEN_SETS:
            raise ValueError(f"tokens must be one of {list(TOKEN_SETS)}, got {self.tokens!r}")
        if self.n_studies < 4 or self.d_sae < 8 or not 0 < self.k < self.d_sae or self.passes <= 0:
            raise ValueError(f"bad curve point {self}; need n_studies >= 4, d_sae >= 8, "
                             "0 < k < d_sae, passes > 0")

    @property
    def site(self) -> str:
        return f"lm.blocks.{self.layer}.resid_post"

    @property
    def name(self) -> str:
        cal = "" if self.calibrate else "-nocal"
        return (f"L{self.layer}-{self.tokens}-n{self.n_studies}-d{self.d_sae}-k{self.k}"
                f"-p{self.passes:g}{cal}")


def training_acts(store, site: str, tokens: str, n_studies: int) -> torch.Tensor:
    """(N, d_in) float32 rows of the first ``n_studies`` studies of ``store`` (image: slot 0)."""
    want = set(store.studies()[:n_studies])
    if len(want) < n_studies:
        raise ValueError(f"{store.root} holds {len(want)} studies, the point asks for "
                         f"{n_studies}; capture more training phantoms")
    out = []
    for a, m in store.iter_chunks(site, token_kinds=TOKEN_SETS[tokens]):
        keep = np.isin(m["study_id"], list(want))
        if tokens == "image":
            keep &= m["image_slot"] == 0
        out.append(a[torch.from_numpy(keep)])
    return torch.cat(out)


@torch.no_grad()
def calibrate_threshold(sae, acts: torch.Tensor, target_l0: float) -> float:
    """Set ``sae.threshold`` to one scalar so its mean L0 on ``acts`` is ``target_l0``."""
    t = threshold_for_l0(torch.cat([sae.preacts(a) for a in acts.split(8192)]), target_l0)
    sae.threshold.fill_(t)
    return t


def train_sae(point: CurvePoint, acts: torch.Tensor, out: Path, progress: bool = False):
    """Matryoshka BatchTopK SAE on ``acts`` (the demo's widths: d/8, d/4, d/2, d)."""
    from sae_training.config import TrainConfig
    from sae_training.data import TensorActivationSource
    from sae_training.trainer import Trainer

    d = point.d_sae
    widths = sorted({max(1, d // 8), max(1, d // 4), max(1, d // 2), d})
    tcfg = TrainConfig(d_sae=d, k=point.k, widths=widths, total_tokens=int(point.passes * len(acts)),
                       checkpoint_every=0, progress=progress, log_every=1000)
    return Trainer(tcfg, TensorActivationSource(acts, name=point.site), out).fit()


def run_point(point: CurvePoint, train_acts: Callable[[CurvePoint], torch.Tensor],
              scopes: dict[str, ScopeActs], studies: list[Study], out_dir: str | Path, *,
              twins: ScopeActs | None = None, grid: tuple[int, int] | None = None,
              recovery_cfg: RecoveryConfig | None = None, sae_root: str | Path | None = None,
              progress: bool = False) -> dict:
    """Train the point's SAE on ``train_acts(point)`` (N, d_in) and score its recovery on
    ``scopes`` (the point's site) beside the baselines; skipped when its result exists.
    ``sae_root``: where the point's SAE lives (default ``out_dir``); a finished SAE there is
    loaded, not retrained, so other recovery settings can score the same SAEs."""
    out = Path(out_dir) / point.name
    sae_dir = Path(sae_root or out_dir) / point.name / "sae"
    if (out / RESULT_FILE).exists():
        return json.loads((out / RESULT_FILE).read_text())
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    acts = train_acts(point)  # (N, d_in)
    sae = train_sae(point, acts, sae_dir, progress=progress)
    t_train = time.time() - t0
    calib = acts[torch.randperm(len(acts), generator=torch.Generator().manual_seed(0))[:50_000]]
    l0_own = mean_l0(sae, calib)
    thr = calibrate_threshold(sae, calib, point.k) if point.calibrate else None
    res = evaluate_recovery(scopes, sae, studies, twins=twins, grid=grid, cfg=recovery_cfg)
    res.update(point=point.to_dict(), name=point.name, site=point.site, train_tokens=len(acts),
               l0_own_threshold=l0_own, calibrated_threshold=thr,
               seconds={"train": t_train, "total": time.time() - t0})
    write_json_atomic(out / RESULT_FILE, res)
    log.info("%s: image F1 margin %s (%.0f s)", point.name,
             res["summary"].get("image", {}).get("f1", {}).get("margin"), time.time() - t0)
    return res
