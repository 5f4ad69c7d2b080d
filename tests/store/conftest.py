"""Synthetic studies for store tests: deterministic activations + metadata, no model.

Kept free of ``radinterp.models`` (which imports transformers) so the subprocesses of the
write-error test start fast; ``test_kind_values_match_token_kinds`` checks the kind values against TokenKind.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radinterp.store import make_manifest

SITES = ["lm.blocks.1.resid_post", "lm.blocks.3.resid_post"]
D = 8
IMAGE, BOILERPLATE, REPORT = 0, 1, 3  # TokenKind values


def study_rows(i: int, d: int = D) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray]]:
    """Rows of synthetic study i: 5 + i % 7 positions, values encode (study, position, site)."""
    n = 5 + i % 7
    pos = np.arange(n)
    acts = {
        s: torch.tensor([[i * 1000 + p * 10 + j + k * 0.5 for k in range(d)] for p in pos],
                        dtype=torch.float32)
        for j, s in enumerate(SITES)
    }
    kind = np.where(pos < 2, IMAGE, np.where(pos < 3, BOILERPLATE, REPORT)).astype(np.int8)
    meta = {
        "study_index": np.zeros(n, np.int32),
        "position": pos.astype(np.int32),
        "token_id": (pos + 100 * i).astype(np.int32),
        "kind": kind,
        "image_slot": np.where(pos < 2, 0, -1).astype(np.int8),
        "patch_row": np.where(pos < 2, 0, -1).astype(np.int16),
        "patch_col": np.where(pos < 2, pos, -1).astype(np.int16),
        "field": np.full(n, -1, np.int8),
    }
    return acts, meta


def batch_rows(ids: list[int]) -> tuple[list[str], dict[str, torch.Tensor], dict[str, np.ndarray]]:
    parts = [study_rows(i) for i in ids]
    acts = {s: torch.cat([p[0][s] for p in parts]) for s in SITES}
    meta = {c: np.concatenate([p[1][c] for p in parts]) for c in parts[0][1]}
    meta["study_index"] = np.concatenate(
        [np.full(len(p[1]["kind"]), k, np.int32) for k, p in enumerate(parts)])
    return [f"s{i:04d}" for i in ids], acts, meta


@pytest.fixture
def manifest() -> dict:
    return make_manifest(model="synthetic", sites=SITES, dtype="float32", d_model=D,
                         token_filter="all", shard_bytes=2000)
