"""k-sparse probing and absorption on codes with a known answer."""

from __future__ import annotations

import numpy as np

from eval.recovery.metrics import split_studies
from eval.sae_eval.probing import absorption, k_sparse_probe, probe_concepts


def _codes(n: int = 80, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3 == 0  # the label
    Z = np.abs(rng.normal(0, 0.1, (n, 12))) * (rng.random((n, 12)) < 0.3)
    pos = np.flatnonzero(y)
    Z[:, [4, 7]] = 0.0  # the label's latents fire only on it
    Z[pos[::2], 4] = 2.0 + rng.random(pos[::2].size)  # latent 4: half of the positives
    Z[pos[1::2], 7] = 1.5 + rng.random(pos[1::2].size)  # latent 7: the other half
    return Z, y


def test_split_label_needs_two_latents_and_k2_probe_finds_both() -> None:
    Z, y = _codes()
    ids = [f"s{i:03d}" for i in range(len(y))]
    sel, held = split_studies(ids)
    probe = k_sparse_probe(Z, y, sel, held)
    assert set(probe["2"]["latents"]) == {4, 7}
    assert probe["2"]["auroc"] == 1.0 and probe["1"]["auroc"] < 0.9
    ab = absorption(Z, y, sel, held)
    assert sorted(ab["latents"]) == [4, 7] and ab["n_split"] == 2 and ab["coverage"] == 1.0
    # one latent for the whole label: no split
    Z1 = Z.copy()
    Z1[y, 4] = 2.0
    assert absorption(Z1, y, sel, held)["n_split"] == 1


def test_probe_concepts_beside_a_random_encoder() -> None:
    Z, y = _codes()
    ids = [f"s{i:03d}" for i in range(len(y))]
    labels = {i: ({"Pleural Effusion": 1} if yi else {"Pleural Effusion": 0}) for i, yi in zip(ids, y)}
    rand = np.random.default_rng(1).random(Z.shape) * (np.random.default_rng(2).random(Z.shape) < 0.3)
    out = probe_concepts({"trained": Z, "random": rand}, ids, labels)
    assert list(out["labels"]) == ["Pleural Effusion"]
    assert out["mean"]["trained"]["auroc_k5"] == 1.0 > out["mean"]["random"]["auroc_k5"]
    assert out["mean"]["trained"]["labels_split"] == 1
