"""Streaming reader: shuffle buffer, rank split, token-kind filter, sae-lens provider."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from radinterp.models.tokens import TokenKind
from radinterp.store import StoreError, StoreWriter, open_store
from radinterp.store.shuffle import sequential_batches, shuffle_batches
from tests.store.conftest import SITES, batch_rows


@pytest.fixture
def store(tmp_path, manifest):
    with StoreWriter(tmp_path, manifest) as w:
        for k in range(0, 60, 4):
            w.append(*batch_rows(list(range(k, k + 4))))
    return open_store(tmp_path)


def all_rows(store, site=SITES[0], kinds=None) -> torch.Tensor:
    return torch.cat([a for a, _ in store.iter_chunks(site, token_kinds=kinds)])


def as_set(x: torch.Tensor) -> list[tuple]:
    return sorted(map(tuple, x.tolist()))


def test_shuffled_epoch_yields_every_row_once(store):
    ref = all_rows(store)
    got = list(store.reader(SITES[0], 16, shuffle_buffer_tokens=64, seed=1, drop_last=False,
                            block_rows=10))
    assert all(b.shape == (16, store.d_model) and b.dtype == torch.float32 for b in got[:-1])
    flat = torch.cat(got)
    assert as_set(flat) == as_set(ref)
    assert not torch.equal(flat, ref)  # actually shuffled


def test_reader_is_deterministic_and_epoch_dependent(store):
    def run(seed, epoch):
        return torch.cat(list(store.reader(SITES[1], 8, shuffle_buffer_tokens=40, seed=seed,
                                           epoch=epoch, block_rows=16)))
    assert torch.equal(run(0, 0), run(0, 0))
    assert not torch.equal(run(0, 0), run(0, 1))
    assert not torch.equal(run(0, 0), run(1, 0))


def test_ranks_are_disjoint_and_cover_the_store(store):
    ref = all_rows(store)
    parts = [torch.cat(list(store.reader(SITES[0], 4, shuffle_buffer_tokens=32, seed=3, rank=r,
                                         world_size=3, drop_last=False, block_rows=12,
                                         equal_batches=False)))
             for r in range(3)]
    sets = [set(as_set(p)) for p in parts]
    assert not (sets[0] & sets[1]) and not (sets[1] & sets[2]) and not (sets[0] & sets[2])
    assert as_set(torch.cat(parts)) == as_set(ref)
    counts = [len(list(store.reader(SITES[0], 4, shuffle_buffer_tokens=32, seed=3, rank=r,
                                    world_size=3, block_rows=12, token_kinds=["report"])))
              for r in range(3)]
    assert len(set(counts)) == 1 and counts[0] > 0  # equal_batches for DDP


def test_token_kind_filter(store):
    got = torch.cat(list(store.reader(SITES[0], 5, shuffle_buffer_tokens=20,
                                      token_kinds=[TokenKind.IMAGE], drop_last=False)))
    meta = store.metadata()
    image_rows = np.nonzero(meta["kind"] == TokenKind.IMAGE)[0]
    assert got.shape[0] == len(image_rows) == store.num_tokens(token_kinds=["image"])
    assert as_set(got) == as_set(store.get_rows(SITES[0], image_rows))
    with pytest.raises(StoreError, match="unknown token kind"):
        store.num_tokens(token_kinds=["pixels"])


def test_unshuffled_reader_is_store_order(store):
    got = torch.cat(list(store.reader(SITES[0], 7, shuffle_buffer_tokens=0, drop_last=False)))
    assert torch.equal(got, all_rows(store))


def test_shuffle_buffer_memory_is_bounded():
    """Rows held (read but not yet emitted) never exceed capacity + one chunk."""
    capacity, chunk, bs = 50, 13, 8
    state = {"read": 0, "emitted": 0, "max_held": 0}

    def chunks():
        for i in range(200):
            state["read"] += chunk
            yield torch.full((chunk, 2), float(i))

    for b in shuffle_batches(chunks(), capacity, bs, torch.Generator().manual_seed(0)):
        state["emitted"] += b.shape[0]
        state["max_held"] = max(state["max_held"], state["read"] - state["emitted"])
    assert state["max_held"] <= capacity + chunk
    assert state["emitted"] == (200 * chunk) // bs * bs


def test_sequential_batches_carry_remainders():
    out = list(sequential_batches([torch.arange(5.0)[:, None], torch.arange(5.0, 12)[:, None]], 4,
                                  drop_last=False))
    assert [b.shape[0] for b in out] == [4, 4, 4]
    assert torch.equal(torch.cat(out)[:, 0], torch.arange(12.0))


def test_site_batches_protocol(store):
    src = store.site_batches(SITES[0], shuffle_buffer_tokens=32, token_kinds=["report"])
    assert src.d_in == store.d_model
    assert src.num_tokens() == store.num_tokens(token_kinds=[TokenKind.REPORT])
    batches = list(src.iter_batches(8, rank=0, world_size=1, seed=0, epoch=0))
    assert len(batches) == src.num_tokens() // 8
    prov = src.sae_lens_provider(8)
    first = [next(prov) for _ in range(len(batches) + 2)]  # runs past one epoch
    assert all(b.shape == (8, store.d_model) for b in first)


def test_feeds_sae_lens_trainer(store):
    from sae_lens import StandardTrainingSAE, StandardTrainingSAEConfig
    from sae_lens.config import LoggingConfig
    from sae_lens.training.sae_trainer import SAETrainer, SAETrainerConfig

    torch.manual_seed(0)
    src = store.site_batches(SITES[0], shuffle_buffer_tokens=64)
    sae = StandardTrainingSAE(StandardTrainingSAEConfig(d_in=src.d_in, d_sae=16))
    cfg = SAETrainerConfig(
        n_checkpoints=0, checkpoint_path=None, save_final_checkpoint=False,
        total_training_samples=16 * 20, device="cpu", autocast=False, lr=1e-3, lr_end=1e-3,
        lr_scheduler_name="constant", lr_warm_up_steps=0, adam_beta1=0.9, adam_beta2=0.999,
        lr_decay_steps=0, n_restart_cycles=1, train_batch_size_samples=16,
        dead_feature_window=1000, feature_sampling_window=1000,
        logger=LoggingConfig(log_to_wandb=False),
    )
    trainer = SAETrainer(cfg, sae, src.sae_lens_provider(16))
    trainer.fit()
    assert trainer.n_training_samples == 16 * 20


def test_head_view_sees_only_a_prefix_of_rows(store):
    ref = store.shards[0]
    cut = dataclasses.replace(ref, rows=ref.rows - 3,
                              kind_counts=tuple(np.bincount(
                                  store.metadata(np.arange(ref.rows - 3))["kind"].astype(int),
                                  minlength=len(ref.kind_counts)).tolist()))
    view = store.head([cut])
    assert view.num_tokens() == ref.rows - 3 and store.num_tokens() > view.num_tokens()
    got = torch.cat([acts for acts, _ in view.iter_chunks(SITES[0])])
    assert torch.equal(got, store.get_rows(SITES[0], np.arange(ref.rows - 3)).to(got.dtype))
    with pytest.raises(ValueError, match="prefix"):
        store.head(store.shards[1:] or [dataclasses.replace(ref, rows=ref.rows + 1)])
