"""A real small release for the SAE eval and publish tests: phantoms captured with the tiny
model, an SAE trained on the store by ``sae_training`` (calibrated on held-out rows), and its
eval (built once per session)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

SITE = "lm.blocks.1.resid_post"


@dataclass
class TinyRelease:
    phantoms: Path
    acts: Path
    sae: Path
    eval_out: Path


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory) -> TinyRelease:
    from radinterp.capture.config import CaptureConfig
    from radinterp.capture.runner import run_capture
    from radinterp.data.phantoms import PhantomConfig, generate_phantoms
    from sae_training.config import TrainConfig
    from sae_training.data import open_activation_source
    from sae_training.trainer import Trainer
    from eval.sae_eval import EvalConfig, run_eval

    root = tmp_path_factory.mktemp("release")
    ph = generate_phantoms(PhantomConfig(n=24, seed=5, size=112, prior_fraction=0.0),
                           root / "phantoms", progress=False)
    run_capture(CaptureConfig(data=str(ph), out=str(root / "acts"), model="tiny", sites=[SITE],
                              image_size=112, progress=False, batch_size=8))
    cfg = TrainConfig(d_sae=128, k=8, widths=[32, 128], batch_size=256, total_tokens=20_000,
                      held_out_tokens=1024, checkpoint_every=0, progress=False, seed=0)
    Trainer(cfg, open_activation_source(root / "acts", site=SITE), root / "sae").fit()
    out = root / "sae" / "eval"
    run_eval(EvalConfig(sae=str(root / "sae"), acts=str(root / "acts"), out=str(out),
                        fidelity_studies=4, probe_min_each=3, progress=False))
    return TinyRelease(Path(ph), root / "acts", root / "sae", out)
