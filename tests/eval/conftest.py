"""A real small release for the SAE eval and publish tests: phantoms captured with the tiny
model, an SAE trained on the store by ``sae_training`` (calibrated on held-out rows), and its
eval (built once per session); CSR and INSIGHT fitted on the same phantoms and the bridge of
the SAE with them (``bridge_methods``, ``bridge_run``: shared by the bridge and browser tests,
which only read them)."""

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


BRIDGE_SPLIT = (0.4, 0.2, 0.4)
CSR = dict(d_feature=16, d_proj=8, n_prototypes=2, epochs_concept=15, epochs_proto=10, lr=1e-2,
           epochs_task=20, batch_size=32, min_positives=2, task="findings")


def bridge_cfg(release: TinyRelease, out, methods, **kw):
    from eval.bridges import BridgeConfig

    opts = {"n_permutations": 20, "report_fraction": 0.6, "progress": False, "n_examples": 2, **kw}
    return BridgeConfig(sae=str(release.sae), acts=str(release.acts), out=str(out),
                        methods=[str(m) for m in methods], **opts)


def capture_twins(tiny_release, root, drop: set[str] | None = None, keep: int | None = None, prefix: str = ""):
    """Healthy twins of the phantoms (the first ``keep``, less ``drop``; ids prefixed), captured
    like the store."""
    from eval.recovery.counterfactual import write_twin_jsonl
    from radinterp.capture.config import CaptureConfig
    from radinterp.capture.runner import run_capture
    from radinterp.data.sources import open_studies
    from radinterp.data.study import Study
    from radinterp.store import open_store

    studies = [s for s in sorted(open_studies(tiny_release.phantoms), key=lambda s: s.study_id)[:keep]
               if s.study_id not in (drop or set())]
    studies = [Study(prefix + s.study_id, frontal=s.frontal, indication=s.indication, meta=s.meta)
               for s in studies]
    jsonl = write_twin_jsonl(studies, root / "twins.jsonl")
    run_capture(CaptureConfig(data=str(jsonl), out=str(root / "acts"), model="tiny",
                              sites=open_store(tiny_release.acts).sites, image_size=112, progress=False,
                              batch_size=8, token_filter="image", with_report=False))
    return root / "acts"


@pytest.fixture(scope="session")
def bridge_twins(tiny_release, tmp_path_factory) -> Path:
    """Twins of the store's studies, less two report studies (counted, not scored)."""
    from eval.bridges.associate import report_split
    from eval.methods.splits import make_split
    from radinterp.store import open_store

    test = make_split([str(s) for s in open_store(tiny_release.acts).studies()], BRIDGE_SPLIT, 0).test
    return capture_twins(tiny_release, tmp_path_factory.mktemp("twins"),
                         drop=set(report_split(sorted(test), 0.6, 0)[1][:2]))


@pytest.fixture(scope="session")
def bridge_methods(tiny_release, tiny_adapter, tmp_path_factory) -> Path:
    from eval.methods import MethodRunConfig, run_method

    root = tmp_path_factory.mktemp("bridge_methods")
    common = dict(data=str(tiny_release.phantoms), model="tiny", model_options={"image_size": 112},
                  progress=False, split=BRIDGE_SPLIT)
    run_method(MethodRunConfig(method="csr", out=str(root / "csr"), options=CSR, **common),
               adapter=tiny_adapter)
    run_method(MethodRunConfig(method="insight", out=str(root / "insight"), options={
        "epochs": 10, "eval_every": 5, "min_positives": 2, "hidden": 8}, **common), adapter=tiny_adapter)
    return root


@pytest.fixture(scope="session")
def bridge_run(tiny_release, bridge_methods, bridge_twins, tmp_path_factory) -> tuple[Path, dict]:
    """(out folder, bridge.json) of the bridge with CSR and INSIGHT."""
    from eval.bridges import run_bridge

    out = tmp_path_factory.mktemp("bridge") / "out"
    return out, run_bridge(bridge_cfg(tiny_release, out, [bridge_methods / "csr",
                                                          bridge_methods / "insight"],
                                       twins=str(bridge_twins)))
