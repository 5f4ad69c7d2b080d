"""CSR on real (tiny) computations: planted concepts on synthetic patch features, the paper's
interactions moving the metrics the expected way on constructed cases, a real run through the
frame on phantoms with the tiny model, and bad inputs."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from eval.methods import MethodRunConfig, run_method
from eval.methods.csr import (
    Box,
    CSRConfig,
    CSRSplit,
    box_weights,
    multi_prototype_contrastive_loss,
    prune_prototypes,
    refine_atlas,
    reject_concepts,
    train_csr,
)
from eval.methods.csr.evaluate import PartData, pointing, prototype_maps, task_f1, view
from eval.methods.csr.interact import concept_support, oracle_boxes, oracle_rejections
from eval.methods.csr.model import prototype_scores
from eval.methods.csr.measure import random_atlas
from eval.methods.csr.tasks import TaskLabels
from eval.methods.masks import PatchMasks
from eval.methods.splits import make_split
from radinterp.data.sources import open_studies
from radinterp.errors import InputError
from radinterp.metrics import best_f1_threshold

SIDE, D, K = 6, 16, 3
NAMES = ["c0", "c1", "c2"]
TINY = dict(d_feature=16, d_proj=8, n_prototypes=2, epochs_concept=25, epochs_proto=20, lr=1e-2,
            epochs_task=40, batch_size=32)


def planted(n: int, seed: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Features (n, 6, 6, 16) of noise with concept j's direction added at one patch of the
    studies that have it; labels (n, 3) and the planted patch as mask fractions (n, 3, 6, 6)."""
    g = torch.Generator().manual_seed(seed)
    dirs = 3 * F.normalize(torch.randn(K, D, generator=torch.Generator().manual_seed(99)), dim=-1)
    x = 0.3 * torch.randn(n, SIDE, SIDE, D, generator=g)
    y = (torch.rand(n, K, generator=g) < 0.4).numpy()
    frac = np.zeros((n, K, SIDE, SIDE))
    where = torch.randint(SIDE, (n, K, 2), generator=g)
    for i, j in zip(*np.nonzero(y)):
        r, c = where[i, j].tolist()
        x[i, r, c] += dirs[j]
        frac[i, j, r, c] = 1.0
    return x, y, frac


def part(x: torch.Tensor, y: np.ndarray, frac: np.ndarray) -> PartData:
    ab = y[:, :2].any(1)  # c2 plays a device: not abnormal
    ids = [f"s{i}" for i in range(len(x))]
    return PartData(ids, x, y, TaskLabels(["normal", "abnormal"], np.stack([~ab, ab], 1), True),
                    PatchMasks(ids, NAMES, frac, y.copy()))


def split(p: PartData) -> CSRSplit:
    return CSRSplit(p.x, torch.from_numpy(p.concepts).float(), torch.from_numpy(p.task.labels).float())


@pytest.fixture(scope="module")
def trained():
    parts = {name: part(*planted(n, seed)) for name, n, seed in
             (("train", 240, 0), ("val", 80, 1), ("test", 80, 2))}
    model, losses = train_csr(split(parts["train"]), split(parts["val"]), CSRConfig(**TINY),
                              exclusive=True, progress=False)
    return model, parts, losses


def test_contrastive_loss_pulls_to_own_concept():
    protos = F.normalize(torch.randn(3, 2, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    z = protos[1, 0:1]  # a vector on concept 1's first prototype
    own = multi_prototype_contrastive_loss(z, torch.tensor([1]), protos, tau=0.1)
    other = multi_prototype_contrastive_loss(z, torch.tensor([0]), protos, tau=0.1)
    assert own < 0.5 < other


def test_csr_learns_and_localises_planted_concepts(trained):
    model, parts, losses = trained
    test = parts["test"]
    v = view(model, prototype_maps(model, test.x))
    loc = pointing(v.maps, test)
    assert loc["n_scored"] == int(test.concepts.sum()) and loc["pointing_game"] >= 0.9
    assert task_f1(v.logits, test.task, None)["macro_f1"] >= 0.85
    rand = random_atlas(model, parts, seed=0)
    assert pointing(view(rand, prototype_maps(rand, test.x)).maps, test)["pointing_game"] < 0.6
    # every prototype was pushed onto a training study that has its concept
    src = model.atlas.source
    assert (src >= 0).all()
    assert all(parts["train"].concepts[src[k, m], k] for k in range(K) for m in range(2))
    assert set(losses) == {"concept_bce", "atlas_contrastive", "task"}


def test_rejecting_a_spurious_concept_restores_the_task(trained):
    model, parts, _ = trained
    x, y, frac = planted(80, 3)
    dirs = 3 * F.normalize(torch.randn(K, D, generator=torch.Generator().manual_seed(99)), dim=-1)
    normal = np.flatnonzero(~y[:, :2].any(1))
    x[normal, 0, 0] += dirs[1]  # an artefact that looks like c1 on normal studies (labels unchanged)
    test = part(x, y, frac)
    pm = prototype_maps(model, test.x)
    before = view(model, pm)
    val_scores = view(model, prototype_maps(model, parts["val"].x)).scores
    thr = np.array([best_f1_threshold(parts["val"].concepts[:, k], val_scores[:, k]) for k in range(K)])
    rejected = oracle_rejections(before.scores, test.concepts, thr)
    assert rejected[normal, 1].float().mean() > 0.8 and not rejected[torch.from_numpy(y)].any()
    support = concept_support(model, prototype_scores(pm), torch.from_numpy(before.logits.argmax(1))[:, None]
                              == torch.arange(2), exclusive=True)
    cited = oracle_rejections(before.scores, test.concepts, thr, support)
    assert (cited <= rejected).all() and cited[normal, 1].float().mean() > 0.5
    after = view(model, pm, rejected=rejected)
    f1_before = task_f1(before.logits, test.task, None)["macro_f1"]
    f1_after = task_f1(after.logits, test.task, None)["macro_f1"]
    assert f1_before < 0.8 and f1_after > f1_before + 0.1
    np.testing.assert_array_equal(after.maps, before.maps)  # rejection leaves the maps alone


def test_boxes_move_the_maps_toward_the_finding(trained):
    model, _, _ = trained
    x, y, frac = planted(80, 4)
    dirs = 3 * F.normalize(torch.randn(K, D, generator=torch.Generator().manual_seed(99)), dim=-1)
    for i in np.flatnonzero(y[:, 0]):  # a stronger copy of c0 where its mask is not
        r, c = [(r, c) for r in range(SIDE) for c in range(SIDE) if frac[i, 0, r, c] == 0][7]
        x[i, r, c] += 1.5 * dirs[0]
    test = part(x, y, frac)
    pm = prototype_maps(model, test.x)
    base = view(model, pm)
    pg = pointing(base.maps, test)["per_concept"]["c0"]["pointing_game"]
    neg = oracle_boxes(base.maps, test.masks, test.concepts, positive=False)
    assert neg and all(not b.positive for b in neg)
    after_neg = view(model, pm, weights=box_weights(base.maps.shape, neg))
    pg_neg = pointing(after_neg.maps, test)["per_concept"]["c0"]["pointing_game"]
    pos = oracle_boxes(base.maps, test.masks, test.concepts, positive=True)
    after_pos = view(model, pm, weights=box_weights(base.maps.shape, pos))
    assert pg < 0.5 and pg_neg > pg + 0.3
    assert pointing(after_pos.maps, test)["pointing_game"] == 1.0


def test_pruning_a_shortcut_prototype_restores_pointing(trained):
    model, parts, _ = trained
    bad = copy.deepcopy(model)
    with torch.no_grad():  # prototype (0, 0) becomes a background patch of a c0 study
        i = int(np.flatnonzero(parts["train"].concepts[:, 0])[0])
        f, _ = bad.concept(parts["train"].x[i:i + 1])
        r, c = [(r, c) for r in range(SIDE) for c in range(SIDE)
                if parts["train"].masks.fraction[i, :, r, c].sum() == 0][0]
        bad.atlas.prototypes[0, 0] = bad.atlas.embed(f[0, :, r, c])
    test, val = parts["test"], parts["val"]
    pg = lambda m: pointing(view(m, prototype_maps(m, test.x)).maps, test)["per_concept"]["c0"]["pointing_game"]
    pruned, hits = refine_atlas(prototype_maps(bad, val.x).numpy(), val.masks, val.concepts,
                                bad.atlas.active, min_hit=0.5)
    assert (0, 0) in pruned and hits[0, 0] < 0.5 and hits.shape == (K, 2)
    assert all(any((k, m) not in pruned for m in range(2)) for k in range(K))  # best one kept
    refined = prune_prototypes(copy.deepcopy(bad), pruned)
    assert pg(bad) < 0.5 and pg(refined) >= 0.9


def test_bad_inputs_raise_with_the_fix():
    x = torch.zeros(4, SIDE, SIDE, D)
    with pytest.raises(ValueError, match="pass features on the patch grid"):
        CSRSplit(x[0], torch.zeros(4, K), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="must be 0 or 1"):
        CSRSplit(x, torch.full((4, K), 0.5), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="one row of labels per study"):
        CSRSplit(x, torch.zeros(3, K), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="pass r0 < r1"):
        Box(0, 0, 2, 2, 2, 3)
    with pytest.raises(ValueError, match="this run's patch grid"):
        box_weights((1, K, SIDE, SIDE), [Box(0, 0, 0, 0, SIDE + 1, 1)])
    with pytest.raises(ValueError, match="out of range"):
        reject_concepts(2, K, [K])
    with pytest.raises(KeyError, match="valid names: abnormal, findings"):
        CSRConfig(task="diagnosis")
    with pytest.raises(ValueError, match="pass one of avg, max, lse"):
        CSRConfig(pool="mean")
    with pytest.raises(ValueError, match="concept:index"):
        CSRConfig(prune=("edema",))


def test_run_on_phantoms_writes_model_maps_metrics_and_resumes(tiny_adapter, phantom_dir, tmp_path):
    ids = [s.study_id for s in open_studies(phantom_dir)]
    test_ids = make_split(ids, (0.6, 0.2, 0.2), 0).test
    feedback = tmp_path / "feedback.json"
    opts = {**{k: str(v) for k, v in TINY.items()}, "min_positives": "2", "task": "findings"}
    base = MethodRunConfig(method="csr", data=str(phantom_dir), out=str(tmp_path / "run"), model="tiny",
                           model_options={"image_size": 112}, progress=False, options=opts)
    m = run_method(base, adapter=tiny_adapter)
    out, names = tmp_path / "run", m["concepts"]
    assert m["task"] == {"name": "findings", "classes": names, "exclusive": False}
    assert set(m["interactions"]) == {"atlas_refinement", "concept_rejection", "positive_boxes",
                                      "negative_boxes"}
    assert {"cam", "random_atlas", "chance_pointing_game", "majority_task"} <= set(m["baselines"])
    loc = m["csr"]["localisation"]
    assert loc["n_scored"] + loc["n_skipped_no_mask"] + loc["n_outside_crop"] == sum(m["positives"]["test"].values())
    assert len(m["prototype_images"]) == len(names)
    maps = sorted((out / "maps").glob("*.safetensors"))
    assert len(maps) == len(test_ids) == m["n_test"]
    from eval.methods.io import load_safetensors

    t, meta = load_safetensors(maps[0])
    n = tiny_adapter.n_patches_side
    assert t["concept_maps"].shape == (len(names), n, n) and t["prototype_maps"].shape == (len(names), 2, n, n)
    assert meta["concepts"] == names and "cam" in t
    # interrupted after training: the rerun loads the model and rewrites only what is missing
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    (out / "metrics.json").unlink()
    maps[0].unlink()
    m2 = run_method(base, adapter=tiny_adapter)
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp and maps[0].exists()
    assert {k: v for k, v in m2.items() if k != "seconds"} == {k: v for k, v in m.items() if k != "seconds"}
    # user interactions as options: reject a concept, prune a prototype, boxes from a file
    feedback.write_text(json.dumps({"reject": {test_ids[0]: [names[0]]}, "boxes": [
        {"study_id": test_ids[1], "concept": names[0], "box": [0, 0, 2, 2], "sign": "negative"}]}))
    user = dict(opts, reject=names[-1], prune=f"{names[0]}:1", feedback=str(feedback))
    mu = run_method(MethodRunConfig(**{**base.to_dict(), "out": str(tmp_path / "user"), "options": user}),
                    adapter=tiny_adapter)
    assert mu["user_feedback"]["pruned"] == [f"{names[0]}:1"] and mu["user_feedback"]["n_boxes"] == 1
    assert mu["user_feedback"]["n_rejected"] == len(test_ids) + (names[0] != names[-1])
    with pytest.raises(InputError, match="use one of"):
        run_method(MethodRunConfig(**{**base.to_dict(), "out": str(tmp_path / "bad"),
                                      "options": dict(opts, reject="no_such_finding")}), adapter=tiny_adapter)


@pytest.mark.parametrize("opt, message", [
    ("task=diagnosis", "unknown CSR task 'diagnosis' (fix: use one of: abnormal, findings)"),
    ("prune=edema", "is not concept:index"),
    ("n_prototypes=0", "must be >= 1"),
])
def test_cli_bad_csr_option_is_one_line(phantom_dir, tmp_path, opt, message):
    import typer

    from eval.methods.cli import register

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    res = CliRunner().invoke(app, ["method", "csr", "--data", str(phantom_dir), "--out",
                                   str(tmp_path / "o"), "--opt", opt])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
