"""The training loop: one process or many (torchrun / accelerate launch, DDP), resumable.

Output folder ``OUT``: the SAE in sae-lens layout (``cfg.json`` + ``sae_weights.safetensors``,
loadable by ``sae_lens.SAE.load_from_disk`` and ``radinterp.sae.load_sae``), its threshold
calibrated on held-out rows (``calibration.json``), ``train_cfg.json`` (this run's resolved
config), ``metrics.jsonl``, ``done.json``; while running, ``checkpoint/``. Rerunning a finished
run is a no-op unless ``overwrite``; an interrupted run resumes from its checkpoint and ends
with the same weights.
"""

from __future__ import annotations

import dataclasses
import json
from contextlib import nullcontext
import logging
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from radinterp.config import write_json_atomic
from radinterp.sae import SAEConfig, SparseAutoencoder, load_sae, save_sae
from sae_training import distributed as D
from sae_training.calibrate import calibrate, write_calibration
from sae_training.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from sae_training.config import TrainConfig
from sae_training.constraints import normalize_decoder, project_decoder_grad
from sae_training.data import ActivationSource, default_held_out
from sae_training.init import B_DEC_INITS, estimate_input_scale, fold_input_scale, init_weights
from sae_training.metrics import BatchStats, MetricsLogger
from sae_training.objective import MatryoshkaObjective

log = logging.getLogger(__name__)

DONE_FILE = "done.json"
DEFAULT_BATCH = 4096
TRAIN_CFG_FILE = "train_cfg.json"


class NonFiniteActivationError(ValueError):
    """Raised when a batch holds NaN/inf and ``on_nonfinite='stop'``."""

    exit_code = 3
    """The CLI's exit code for it (bad data, told apart from bad options)."""


@dataclasses.dataclass
class Plan:
    """Sizes resolved from the config and the data."""

    d_in: int
    batch_size: int  # global
    total_steps: int
    dead_tokens: int
    held_out_tokens: int


def resolve_plan(
    cfg: TrainConfig, source: ActivationSource, world_size: int, held_out_tokens: int
) -> Plan:
    """Sizes for training on ``source`` (the rows left after holding out ``held_out_tokens``)."""
    if cfg.d_in is not None and cfg.d_in != source.d_in:
        raise ValueError(f"--d-in {cfg.d_in} does not match the store's d_in {source.d_in}; "
                         f"drop --d-in or point --acts at activations of width {cfg.d_in}")
    n = source.num_tokens()
    batch = cfg.batch_size
    if batch is None:
        batch = DEFAULT_BATCH if n >= 8 * DEFAULT_BATCH else max(world_size, n // 8)
        batch -= batch % world_size
    if batch % world_size:
        raise ValueError(f"batch_size {batch} is not divisible by {world_size} "
                         f"processes; pass a multiple of {world_size}")
    if n < batch:
        raise ValueError(f"the store has {n} tokens, fewer than one batch of {batch}; pass "
                         f"--batch-size <= {max(world_size, n // 4 // world_size * world_size)}")
    if cfg.total_tokens is not None:
        total = cfg.total_tokens
    else:
        passes = min(100, max(1, math.ceil(2000 * batch / n)))  # >= 2000 steps, <= 100 passes
        total = passes * (n // batch) * batch
    steps = max(1, total // batch)
    dead = cfg.dead_tokens
    if dead is None:
        dead = min(10_000_000, max(batch, steps * batch // 5))
    return Plan(source.d_in, batch, steps, dead, held_out_tokens)


def _mm_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    name = cfg.matmul_dtype
    if name == "auto":
        name = "bfloat16" if device.type == "cuda" else "float32"
    return torch.bfloat16 if name == "bfloat16" else None


class Trainer:
    """Train a Matryoshka BatchTopK SAE on ``source`` into ``out_dir``."""

    def __init__(
        self, cfg: TrainConfig, source: ActivationSource, out_dir: str | Path, *,
        overwrite: bool = False, provenance: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.source = source
        self.out = Path(out_dir)
        self.overwrite = overwrite
        self.provenance = provenance or {}
        self.info = D.init_distributed(cfg.device)
        self.device = D.resolve_device(cfg.device, self.info)
        if not hasattr(source, "hold_out"):
            raise ValueError(f"{type(source).__name__} has no hold_out(n) method, which the "
                             f"threshold calibration needs; wrap the data in "
                             f"sae_training.TensorActivationSource or StoreActivationSource")
        held = cfg.held_out_tokens or default_held_out(source.num_tokens())
        self.source, self.held_out = source.hold_out(held)  # held_out: (held, d_in)
        self.plan = resolve_plan(cfg, self.source, self.info.world_size, held)
        self.local_batch = self.plan.batch_size // self.info.world_size
        self.mode = cfg.kernels
        if self.mode == "auto":
            self.mode = "dense" if self.device.type == "cuda" else "sparse"

    # ------------------------------------------------------------------ setup
    def _build(self) -> None:
        cfg, plan = self.cfg, self.plan
        desc = self.provenance or getattr(self.source, "describe", dict)()
        sae_cfg = SAEConfig(d_in=plan.d_in, d_sae=cfg.d_sae, k=cfg.k, widths=cfg.widths,
                            site=desc.get("site"), model=desc.get("model"),
                            extra={k: v for k, v in desc.items() if k not in ("site", "model")})
        gen = torch.Generator().manual_seed(cfg.seed)
        self.sae = SparseAutoencoder(sae_cfg)
        init_weights(self.sae, gen)
        self.sae.to(self.device)
        self.objective = MatryoshkaObjective(
            self.sae, aux_k_coef=cfg.aux_k_coef, aux_k=cfg.aux_k, mode=self.mode,
            mm_dtype=_mm_dtype(cfg, self.device), collectives=D.collectives(self.device),
            world_size=self.info.world_size,
        )
        self.model: torch.nn.Module = self.objective
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.objective, device_ids=ids,
                                                 broadcast_buffers=False)
        self.optimizer = torch.optim.Adam(self.sae.parameters(), lr=cfg.resolved_lr)
        self.since_fired = torch.zeros(cfg.d_sae, dtype=torch.int64, device=self.device)
        self.window_fired = torch.zeros(cfg.d_sae, dtype=torch.int64, device=self.device)
        self.state: dict[str, Any] = {
            "step": 0, "epoch": 0, "batch_in_epoch": 0, "tokens": 0, "scale": 1.0,
            "tau": 0.0, "lower_bound": 0.0, "skipped_batches": 0,
            "initialized": False, "world_size": self.info.world_size,
        }

    def _resume_or_init(self) -> None:
        ckpt = find_checkpoint(self.out)
        if ckpt is None:
            return
        record = self.out / TRAIN_CFG_FILE
        saved = TrainConfig.from_dict(
            json.loads(record.read_text())["train"] if record.exists() else self.cfg.to_dict())
        ignore = {"progress", "log_every", "wandb_project", "tensorboard_dir", "device"}
        old = saved.to_dict()
        diff = {k for k, v in self.cfg.to_dict().items() if k not in ignore and old[k] != v}
        if diff:
            raise ValueError(f"{self.out} holds a checkpoint of a run with different settings "
                             f"({sorted(diff)}); rerun with the same settings to resume, or "
                             f"pass --overwrite to start over")
        data = load_checkpoint(ckpt, self.device)
        if data["model"]["W_enc"].shape[0] != self.plan.d_in:
            raise ValueError(f"the checkpoint in {self.out} has d_in "
                             f"{data['model']['W_enc'].shape[0]} but the store has "
                             f"{self.plan.d_in}; use the store it was trained on or --overwrite")
        self.sae.load_state_dict(data["model"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.since_fired.copy_(data["stats"]["since_fired"])
        self.window_fired.copy_(data["stats"]["window_fired"])
        self.state.update(data["state"])
        if self.state["world_size"] != self.info.world_size:
            log.warning("resuming a %d-process run with %d processes; the data order may differ",
                        self.state["world_size"], self.info.world_size)
            self.state["world_size"] = self.info.world_size
        log.info("resumed from %s at step %d", ckpt, self.state["step"])

    def _data_init(self, first: torch.Tensor) -> None:
        """Input scale and b_dec from the data (first global batch), once per run."""
        if self.cfg.normalize == "expected_norm":
            self.state["scale"] = estimate_input_scale(
                self.source, self.local_batch, self.info, self.cfg.seed, self.device)
        x = first * self.state["scale"]
        with torch.no_grad():
            self.sae.b_dec.copy_(B_DEC_INITS[self.cfg.b_dec_init](x))
        self.state["initialized"] = True

    # ------------------------------------------------------------------ data
    def _batches(self) -> Iterator[torch.Tensor]:
        """Batches from the saved data position on, across epochs."""
        st, info = self.state, self.info
        while True:
            it = self.source.iter_batches(self.local_batch, rank=info.rank,
                                          world_size=info.world_size, seed=self.cfg.seed,
                                          epoch=st["epoch"])
            seen = 0
            for i, batch in enumerate(it):
                seen += 1
                if i < st["batch_in_epoch"]:
                    continue
                st["batch_in_epoch"] = i + 1
                yield batch
            if seen == 0:
                raise ValueError(f"epoch {st['epoch']} of the store gave no batch of "
                                 f"{self.local_batch} rows on rank {info.rank}; lower --batch-size")
            st["epoch"] += 1
            st["batch_in_epoch"] = 0

    def _check_finite(self, x: torch.Tensor) -> bool:
        bad = torch.tensor([0 if bool(torch.isfinite(x).all()) else 1], device=self.device)
        D.all_reduce_(bad)
        if not int(bad.item()):
            return True
        where = getattr(self.source, "locate_nonfinite", lambda: [])()
        msg = (f"NaN/inf activations in epoch {self.state['epoch']} batch "
               f"{self.state['batch_in_epoch'] - 1} (step {self.state['step']}); found in: "
               f"{', '.join(where) if where else 'an unknown shard'}")
        if self.cfg.on_nonfinite == "stop":
            raise NonFiniteActivationError(
                f"{msg}. Fix or drop those shards, or rerun with --on-nonfinite skip")
        log.warning("%s; skipping the batch", msg)
        self.state["skipped_batches"] += 1
        return False

    # ------------------------------------------------------------------ loop
    def fit(self) -> SparseAutoencoder:
        if (self.out / DONE_FILE).exists() and not self.overwrite:
            log.info("%s already holds a trained SAE; pass --overwrite to retrain", self.out)
            return load_sae(self.out, device=str(self.device))
        if self.overwrite and self.info.is_main:
            for name in ("checkpoint", "checkpoint.old", DONE_FILE, "metrics.jsonl"):
                p = self.out / name
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        D.barrier()
        self._build()
        self._resume_or_init()
        if self.info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.out / TRAIN_CFG_FILE, self._run_record())
        logger = MetricsLogger(self.out, enabled=self.info.is_main,
                               wandb_project=self.cfg.wandb_project,
                               tensorboard_dir=self.cfg.tensorboard_dir,
                               run_config=self.cfg.to_dict())
        logger.truncate_after(self.state["step"])
        try:
            self._loop(logger)
        finally:
            logger.close()
        return self._finish()

    def _loop(self, logger: MetricsLogger) -> None:
        cfg, st, plan = self.cfg, self.state, self.plan
        stats = BatchStats(len(cfg.widths), plan.d_in, self.device)
        bar = tqdm(total=plan.total_steps, initial=st["step"], desc="train SAE", unit="step",
                   disable=not (cfg.progress and self.info.is_main))
        batches = self._batches()
        t0, tokens0 = time.perf_counter(), st["tokens"]
        while st["step"] < plan.total_steps:
            x = next(batches).to(self.device, non_blocking=True)
            if not self._check_finite(x):
                continue
            if not st["initialized"]:
                self._data_init(x)
            x = x * st["scale"] if st["scale"] != 1.0 else x
            out = self._step(x)
            stats.add(x, out)
            st["step"] += 1
            st["tokens"] += plan.batch_size
            bar.update(1)
            if st["step"] % cfg.log_every == 0 or st["step"] == plan.total_steps:
                metrics = self._metrics(stats, t0, tokens0)
                bar.set_postfix(ev=f"{metrics['explained_variance']:.3f}",
                                l0=f"{metrics['l0']:.1f}")
                logger.log(st["step"], metrics)
                stats = BatchStats(len(cfg.widths), plan.d_in, self.device)
                t0, tokens0 = time.perf_counter(), st["tokens"]
            if cfg.checkpoint_every and st["step"] % cfg.checkpoint_every == 0 \
                    and st["step"] < plan.total_steps:
                self._checkpoint()
        bar.close()

    def _step(self, x: torch.Tensor) -> dict[str, Any]:
        cfg, st = self.cfg, self.state
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.resolved_lr * cfg.lr_multiplier(st["step"], self.plan.total_steps)
        dead = self.since_fired >= self.plan.dead_tokens
        bf16 = self.device.type == "cuda" and _mm_dtype(cfg, self.device) is not None
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else nullcontext()
        with autocast:
            out = self.model(x, dead, st["lower_bound"])
        out["loss"].backward()
        project_decoder_grad(self.sae)
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.sae.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        normalize_decoder(self.sae)
        with torch.no_grad():
            fired = torch.bincount(out["cols"], minlength=cfg.d_sae)  # (d_sae,) local counts
            D.all_reduce_(fired)
            self.window_fired += fired
            self.since_fired += self.plan.batch_size
            self.since_fired[fired > 0] = 0
            st["tau"] = float(out["tau"])
            st["lower_bound"] = 0.8 * st["tau"]
        return out

    def _metrics(self, stats: BatchStats, t0: float, tokens0: int) -> dict[str, float]:
        m = stats.summary(self.cfg.widths, self.info.world_size)
        window = max(1, stats.tokens * self.info.world_size)
        freq = self.window_fired.double() / window
        self.window_fired.zero_()
        m.update({
            "dead_latents": int((self.since_fired >= self.plan.dead_tokens).sum()),
            "dense_latents": int((freq > self.cfg.dense_frequency).sum()),
            "batchtopk_threshold": float(self.state["tau"]),  # of the window's last step
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            "tokens": int(self.state["tokens"]),
            "tokens_per_s": (self.state["tokens"] - tokens0) / max(1e-9, time.perf_counter() - t0),
        })
        return m

    def _checkpoint(self) -> None:
        if self.info.is_main:
            save_checkpoint(
                self.out, self.sae.state_dict(), self.optimizer,
                {"since_fired": self.since_fired, "window_fired": self.window_fired},
                self.state,
            )
        D.barrier()

    def _finish(self) -> SparseAutoencoder:
        # every rank holds the same held-out rows and weights; rank 0's result is broadcast
        calib = calibrate(self.sae, self.held_out * self.state["scale"], self.plan.batch_size)
        calib = D.broadcast_object(calib)
        self.sae.threshold.fill_(calib.threshold)
        final = SparseAutoencoder(self.sae.cfg).to(self.device)
        final.load_state_dict(self.sae.state_dict())
        if self.state["scale"] != 1.0:
            fold_input_scale(final, self.state["scale"])  # pre-activations and threshold unchanged
        final.cfg.extra = {**final.cfg.extra, "input_scale_folded": self.state["scale"],
                           "train_tokens": self.state["tokens"]}
        if self.info.is_main:
            save_sae(final.cpu(), self.out, layout="sae_lens")
            write_calibration(self.out, calib)
            write_json_atomic(self.out / TRAIN_CFG_FILE, self._run_record())
            write_json_atomic(self.out / DONE_FILE, {"step": self.state["step"],
                                                     "tokens": self.state["tokens"]})
            for name in ("checkpoint", "checkpoint.old"):
                shutil.rmtree(self.out / name, ignore_errors=True)
        D.barrier()
        return final.eval()

    def _run_record(self) -> dict[str, Any]:
        return {"train": self.cfg.to_dict(), "plan": dataclasses.asdict(self.plan),
                "kernels": self.mode, "world_size": self.info.world_size,
                "source": getattr(self.source, "describe", dict)(), "state": dict(self.state)}
