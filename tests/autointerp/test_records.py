"""Latent records: one pass over a real store through a real saved SAE equals a brute-force
full computation; sampling, split and negatives; text and image context."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

import radinterp.store.reader as reader_mod
from autointerp.context import (
    encode_study,
    example_sentences,
    marked_sentences,
    patch_heat,
    region_phrase,
    study_labels,
    write_example_heatmap,
)
from autointerp.records import Example, RecordsConfig, build_records
from autointerp.sampling import SampleConfig, hard_negative_scores, in_test, sample_latent
from radinterp.data import Study
from radinterp.labels import label_report
from radinterp.store.format import ShardFile, acts_key
from tests.autointerp.conftest import IMAGE, N_STUDIES, SITE, brute_codes


class CountingShardFile(ShardFile):
    """The real ShardFile, counting reads per (shard, tensor)."""

    reads: Counter = Counter()

    def read_numpy(self, name, start=0, stop=None, out=None):
        CountingShardFile.reads[(self.path.name, name)] += 1
        return super().read_numpy(name, start, stop, out)


def _brute_study_max(z, meta, study_ids):
    return torch.stack([z[torch.from_numpy(meta["study_id"] == s)].max(0).values
                        for s in study_ids])  # (n_studies, d_sae)


def test_one_pass_counts_and_top_examples_equal_a_full_computation(
        planted_store, planted_sae, monkeypatch):
    monkeypatch.setattr(reader_mod, "ShardFile", CountingShardFile)
    CountingShardFile.reads.clear()
    planted_store.close()
    cfg = RecordsConfig(top_k=5, reservoir=4, batch_rows=25)  # many merges
    rec = build_records(planted_store, planted_sae, cfg)
    names = [s.file.split("/")[-1] for s in planted_store.shards]
    assert [CountingShardFile.reads[(n, acts_key(SITE))] for n in names] == [1] * len(names)

    z, meta = brute_codes(planted_store, planted_sae)
    fired = (z > 0).numpy()
    kind = meta["kind"]
    assert rec.study_ids == planted_store.studies() and rec.n_tokens == z.shape[0]
    for k in range(5):
        np.testing.assert_array_equal(rec.fire_by_kind[:, k], fired[kind == k].sum(0))
    np.testing.assert_allclose(rec.frequency(), fired.mean(0))
    smax = _brute_study_max(z, meta, rec.study_ids)
    assert torch.equal(rec.study_max, smax.half())
    img = np.stack([fired[(meta["study_id"] == s) & (kind == IMAGE)].any(0) for s in rec.study_ids])
    txt = np.stack([fired[(meta["study_id"] == s) & (kind != IMAGE)].any(0) for s in rec.study_ids])
    np.testing.assert_array_equal(rec.study_modality, np.stack(
        [(img & ~txt).sum(0), (txt & ~img).sum(0), (img & txt).sum(0)], 1))
    for f in range(rec.d_sae):  # histogram: the same counts as numpy's
        vals = z[:, f][z[:, f] > 0].double().numpy()
        inner, _ = np.histogram(vals, rec.hist_edges)
        assert rec.hist[f, 1:-1].sum() == inner.sum() and rec.hist[f].sum() == len(vals)
        np.testing.assert_array_equal(rec.hist[f, 1:-1], inner)

    for f in range(rec.d_sae):
        col = smax[:, f]
        order = [i for i in torch.argsort(col, descending=True).tolist() if col[i] > 0][:5]
        assert [e.study_id for e in rec.top[f]] == [rec.study_ids[i] for i in order]
        for e in rec.top[f]:  # positions and values of each kept example
            rows = np.flatnonzero((meta["study_id"] == e.study_id) & fired[:, f])
            assert sorted(e.positions.tolist()) == sorted(meta["position"][rows].tolist())
            np.testing.assert_allclose(np.sort(e.values), np.sort(z[rows, f].numpy()))
            assert e.activation == pytest.approx(float(z[rows, f].max()))
        res = rec.reservoir[f]
        n_act = int((col > 0).sum())
        assert len(res) == min(4, n_act) and len({e.study_id for e in res}) == len(res)
        assert all(col[rec.study_ids.index(e.study_id)] > 0 for e in res)
    assert [rec.modality(f) for f in range(rec.d_sae)] == ["image", "text", "both", "both",
                                                           "text", None]
    assert rec.modality_mix(0)["studies_image"] == N_STUDIES // 3


def test_reservoir_is_deterministic_and_samples_more_than_the_top(planted_store, planted_sae):
    cfg = RecordsConfig(top_k=3, reservoir=6, batch_rows=20)
    a, b = build_records(planted_store, planted_sae, cfg), build_records(planted_store,
                                                                         planted_sae, cfg)
    ids = lambda r: [[e.study_id for e in r.reservoir[f]] for f in range(r.d_sae)]  # noqa: E731
    assert ids(a) == ids(b)
    c = build_records(planted_store, planted_sae, RecordsConfig(top_k=3, reservoir=6, seed=1))
    assert ids(c) != ids(a)
    top3 = {e.study_id for e in a.top[3]}
    assert {e.study_id for e in a.reservoir[3]} - top3  # not only the strongest
    capped = build_records(planted_store, planted_sae, RecordsConfig(top_k=3, max_positions=1))
    for full, one in zip(a.top[0], capped.top[0], strict=True):  # the strongest position kept
        assert len(full.positions) == 2 and one.positions.tolist() == full.positions[:1].tolist()
        assert one.values[0] == one.activation == full.activation
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        RecordsConfig(top_k=0)


def test_sampling_quantiles_negatives_and_split(planted_store, planted_sae):
    rec = build_records(planted_store, planted_sae, RecordsConfig(top_k=5, reservoir=40))
    cfg = SampleConfig(n_quantiles=10, per_quantile=1, n_random=4, n_hard=4, seed=3)
    s3 = sample_latent(rec, 3, cfg)
    acts = [e for e in s3.explain + s3.test if e.source == "quantile"]
    assert len({e.quantile for e in acts}) >= 9  # drawn across the whole range
    assert min(e.activation for e in acts) <= s3.quantile_edges[1]
    assert max(e.activation for e in acts) >= s3.quantile_edges[-2]

    for f in range(5):
        s = sample_latent(rec, f, cfg)
        explain, test = {e.study_id for e in s.explain}, {e.study_id for e in s.test}
        assert explain and test and not explain & test
        assert all(in_test(e.study_id, 3, 0.5) for e in s.test)
        negs = [e for e in s.explain + s.test if e.source in ("random", "hard")]
        silent = [i for i in range(N_STUDIES) if rec.study_max[i, f] == 0]
        side = Counter(in_test(rec.study_ids[i], 3, 0.5) for i in silent)
        assert len(negs) == sum(min(8, n) for n in side.values()) and all(e.activation == 0 and not len(e.positions) for e in negs)
        for e in negs:  # never fires anywhere in the study
            assert float(rec.study_max[rec.study_ids.index(e.study_id), f]) == 0
        again = sample_latent(rec, f, cfg)
        assert [e.study_id for e in again.test] == [e.study_id for e in s.test]

    s0 = sample_latent(rec, 0, cfg)
    sims = hard_negative_scores(rec, 0)
    idx = {s: i for i, s in enumerate(rec.study_ids)}
    hard = [sims[idx[e.study_id]] for e in s0.explain + s0.test if e.source == "hard"]
    rand = [sims[idx[e.study_id]] for e in s0.explain + s0.test if e.source == "random"]
    assert min(hard) > np.mean(rand)
    hard_ids = [int(e.study_id[1:]) for e in s0.explain + s0.test if e.source == "hard"]
    assert all(i % 3 == 1 for i in hard_ids)  # they share latent 4 with the activating studies


def test_region_phrase_follows_the_radiological_convention(planted_store, planted_sae):
    heat = np.zeros((6, 6))
    heat[4:, 0:2] = 1.0  # image's left, bottom: the patient's right lower zone
    assert region_phrase(heat) == "right lower zone"
    assert region_phrase(heat[:, ::-1]) == "left lower zone"
    assert region_phrase(heat[::-1, :]) == "right upper zone"
    heat2 = np.zeros((6, 6))
    heat2[2:4, 2:4] = 1.0
    assert region_phrase(heat2) == "central middle zone" and region_phrase(heat2 * 0) is None
    rec = build_records(planted_store, planted_sae, RecordsConfig(top_k=2, reservoir=2))
    grid = patch_heat(rec.top[0][0], 2)  # fires on patches (0, 0) and (1, 0)
    assert grid[:, 0].min() > 0 and grid[:, 1].max() == 0
    assert region_phrase(grid) == "right middle zone"


def _study_example(enc, words: str, study_id: str) -> tuple[Example, np.ndarray]:
    start = enc.text.rindex(words)
    pos = np.flatnonzero((enc.char_spans[:, 1] > start)
                         & (enc.char_spans[:, 0] < start + len(words)))
    n = len(pos)
    ex = Example(study_id, 0, 2.0, positions=pos.astype(np.int32),
                 values=np.linspace(2.0, 1.0, n).astype(np.float32),
                 kinds=np.full(n, 3, np.int8), token_ids=np.asarray(enc.input_ids)[pos],
                 image_slot=np.full(n, -1, np.int8), patch_row=np.full(n, -1, np.int16),
                 patch_col=np.full(n, -1, np.int16))
    return ex, pos


def test_marked_sentences_hold_the_activating_tokens(tiny_adapter, full_study):
    enc = encode_study(tiny_adapter, full_study)
    ex, pos = _study_example(enc, "pleural effusion", full_study.study_id)
    [sent] = example_sentences(ex, enc)
    assert sent.text == "The left pleural effusion has resolved."
    assert sent.marked.replace("<<", "").replace(">>", "") == sent.text
    marked = sent.marked[sent.marked.index("<<") + 2: sent.marked.rindex(">>")]
    assert "pleural" in marked and "effusion" in marked and "resolved" not in marked
    assert sent.marked == "The left <<pleural>> <<effusion>> has resolved."  # adjacent merged
    assert sent.values == pytest.approx(ex.values.tolist()) and "effusion" in sent.describe()
    assert all(t.strip() in marked for t in sent.tokens)
    # two tokens in two sentences: one marked sentence each, in reading order
    ex2, _ = _study_example(enc, "pneumothorax", full_study.study_id)
    both = marked_sentences(enc.text, enc.char_spans, np.r_[pos, ex2.positions],
                            np.r_[ex.values, ex2.values], layout=enc.layout)
    assert [s.text for s in both] == ["The left pleural effusion has resolved.",
                                      "No pneumothorax."]
    assert "<<" in both[1].marked and "pneumothorax" in both[1].marked
    bad = Example(**{**ex.__dict__, "token_ids": ex.token_ids + 1})
    with pytest.raises(ValueError, match="tokenises differently"):
        example_sentences(bad, enc)


def test_heatmap_png_and_labels(tmp_path, tiny_adapter, radiograph):
    study = Study("s1", frontal=radiograph(), report="Small right pleural effusion.")
    n = tiny_adapter.n_patches_side
    rows, cols = np.meshgrid(np.arange(n - 2, n), np.arange(2), indexing="ij")
    k = rows.size
    ex = Example("s1", 0, 3.0, positions=np.arange(k, dtype=np.int32),
                 values=np.full(k, 3.0, np.float32), kinds=np.full(k, IMAGE, np.int8),
                 token_ids=np.zeros(k, np.int32), image_slot=np.zeros(k, np.int8),
                 patch_row=rows.ravel().astype(np.int16), patch_col=cols.ravel().astype(np.int16))
    path = write_example_heatmap(tmp_path / "h.png", ex, study, tiny_adapter, cmap="red")
    px = np.asarray(Image.open(path).convert("RGB")).astype(int)
    coloured = np.argwhere(px[..., 0] - px[..., 1] > 40)  # (n, 2) row, col of red pixels
    h, w = px.shape[:2]
    assert len(coloured) and coloured[:, 1].max() < w / 2 and coloured[:, 0].min() > h / 2
    assert region_phrase(patch_heat(ex, n)) == "right lower zone"
    assert study_labels(study) == label_report(study.report) and study_labels(study)
    assert study_labels(Study("s2", labels={"Edema": 1})) == {"Edema": 1}
