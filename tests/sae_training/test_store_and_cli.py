"""Training from a real activation store through the ``radinterp train`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from radinterp.store import StoreWriter, make_manifest
from radinterp.store.format import META_COLUMNS
from sae_training.cli import register
from sae_training.data import StoreActivationSource, open_activation_source
from tests.sae_training.conftest import sparse_activations

SITE = "lm.blocks.15.resid_post"


def write_store(root: Path, acts: torch.Tensor, rows_per_study: int = 64) -> None:
    manifest = make_manifest(model="tiny-maira2", sites=[SITE], dtype="float32",
                             d_model=acts.shape[1], token_filter="all", shard_bytes=64 << 10)
    with StoreWriter(root, manifest, async_write=False) as w:
        for s, lo in enumerate(range(0, acts.shape[0], rows_per_study)):
            chunk = acts[lo:lo + rows_per_study]
            n = chunk.shape[0]
            meta = {c: np.zeros(n, dt) for c, dt in META_COLUMNS.items()}
            meta["position"] = np.arange(n, dtype=np.int32)
            w.append([f"study{s:04d}"], {SITE: chunk}, meta)


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    return app


def test_store_source_satisfies_protocol_and_is_disjoint(tmp_path: Path) -> None:
    write_store(tmp_path / "store", sparse_activations(1024))
    src = open_activation_source(tmp_path / "store")
    assert isinstance(src, StoreActivationSource) and src.d_in == 16 and src.num_tokens() == 1024
    assert src.describe()["site"] == SITE and src.describe()["model"] == "tiny-maira2"
    r0 = torch.cat(list(src.iter_batches(64, rank=0, world_size=2, seed=1)))
    r1 = torch.cat(list(src.iter_batches(64, rank=1, world_size=2, seed=1)))
    assert not (r0.unsqueeze(1) == r1.unsqueeze(0)).all(-1).any()  # no row on both ranks


def test_train_command_on_a_store(tmp_path: Path, app: typer.Typer) -> None:
    write_store(tmp_path / "store", sparse_activations(2048))
    args = ["train", "--acts", str(tmp_path / "store"), "--out", str(tmp_path / "sae"),
            "--d-sae", "64", "--k", "4", "--widths", "8,32,64", "--batch-size", "128",
            "--total-tokens", str(128 * 40), "--lr", "3e-3", "--no-progress", "--log-every", "10"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["architecture"] == "jumprelu"
    assert cfg["metadata"]["hook_name"] == SITE and cfg["metadata"]["model_name"] == "tiny-maira2"
    assert cfg["metadata"]["training_architecture_details"]["matryoshka_widths"] == [8, 32, 64]


@pytest.mark.parametrize(
    ("extra", "match"),
    [(["--widths", "32,8,64"], "strictly increasing"),
     (["--widths", "8,32"], "must equal d_sae=64"),
     (["--k", "100"], "smaller --k"),
     (["--d-in", "32"], "--d-in 32 does not match the store's d_in 16")],
)
def test_train_command_bad_input(tmp_path: Path, app: typer.Typer, extra: list[str], match: str) -> None:
    write_store(tmp_path / "store", sparse_activations(512))
    args = ["train", "--acts", str(tmp_path / "store"), "--out", str(tmp_path / "sae"),
            "--d-sae", "64", "--k", "4", "--batch-size", "64", "--no-progress", *extra]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2
    assert match in " ".join(res.output.split())


def test_nan_in_a_store_shard_is_reported_by_file(tmp_path: Path, app: typer.Typer) -> None:
    acts = sparse_activations(1024)
    acts[700, 2] = float("nan")
    write_store(tmp_path / "store", acts)
    args = ["train", "--acts", str(tmp_path / "store"), "--out", str(tmp_path / "sae"),
            "--d-sae", "64", "--k", "4", "--batch-size", "128", "--total-tokens", str(128 * 16),
            "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 3
    assert "shards/" in res.output and "(1 rows)" in res.output and "--on-nonfinite skip" in res.output


@pytest.mark.parametrize("kinds", [None, ["report"]])
def test_store_hold_out_takes_the_last_rows_and_training_never_reads_them(
    tmp_path: Path, kinds: list[str] | None
) -> None:
    n = 1000
    acts = torch.zeros(n, 16)
    acts[:, 0] = torch.arange(n, dtype=torch.float32)  # column 0 names the row
    manifest = make_manifest(model="tiny", sites=[SITE], dtype="float32", d_model=16,
                             token_filter="all", shard_bytes=8 << 10)  # many small shards
    with StoreWriter(tmp_path / "store", manifest, async_write=False) as w:
        for s, lo in enumerate(range(0, n, 50)):
            meta = {c: np.zeros(50, dt) for c, dt in META_COLUMNS.items()}
            meta["kind"] = np.where(np.arange(lo, lo + 50) % 3 == 0, 3, 2).astype(np.int8)
            w.append([f"study{s:03d}"], {SITE: acts[lo:lo + 50]}, meta)
    kw = {} if kinds is None else {"token_kinds": kinds}
    src = StoreActivationSource(tmp_path / "store", shuffle_buffer_tokens=64, **kw)
    assert len(src.store.shards) > 3
    rows = np.arange(n) if kinds is None else np.arange(0, n, 3)  # rows of the selected kind
    rest, held = src.hold_out(130)
    assert held[:, 0].long().tolist() == rows[-130:].tolist()
    assert rest.num_tokens() == len(rows) - 130 and src.num_tokens() == len(rows)
    for world in (1, 2):
        seen = torch.cat([b[:, 0] for r in range(world)
                          for b in rest.iter_batches(8, rank=r, world_size=world, seed=2)])
        assert set(seen.long().tolist()) <= set(rows[:-130].tolist())
        if world == 1:  # every training row is read, bar the last partial batch
            assert len(seen) > len(rows) - 130 - 8
    with pytest.raises(ValueError, match="--held-out-tokens between 1 and"):
        src.hold_out(len(rows))
