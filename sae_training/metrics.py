"""Training metrics: MSE, explained variance (total and per Matryoshka prefix), L0, dead and
dense latents; written to ``metrics.jsonl`` and, when installed and asked for, to wandb or
TensorBoard."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from sae_training.distributed import all_reduce_

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"


class BatchStats:
    """Sums over the steps of one logging window, reduced over ranks when read."""

    def __init__(self, n_groups: int, d_in: int, device: torch.device) -> None:
        self.device = device
        self.sse = torch.zeros(n_groups, dtype=torch.float64, device=device)  # per prefix
        self.sum_x = torch.zeros(d_in, dtype=torch.float64, device=device)
        self.sum_sq = torch.zeros((), dtype=torch.float64, device=device)
        self.tokens = 0
        self.selected = 0
        self.aux = 0.0
        self.steps = 0

    @torch.no_grad()
    def add(self, x: torch.Tensor, out: dict[str, Any]) -> None:
        self.sse += out["sse"].double()
        self.sum_x += x.double().sum(0)
        self.sum_sq += x.double().pow(2).sum()
        self.tokens += x.shape[0]
        self.selected = self.selected + int(out["n_selected"])
        self.aux += float(out["aux_loss"]) if out["aux_loss"] is not None else 0.0
        self.steps += 1

    def summary(self, widths: list[int], world_size: int) -> dict[str, float]:
        """Metrics over the window (all ranks); call on every rank (it all-reduces)."""
        extra = torch.tensor([float(self.tokens), self.aux], dtype=torch.float64,
                             device=self.device)
        buf = torch.cat([self.sse, self.sum_x, self.sum_sq.reshape(1), extra])
        all_reduce_(buf)
        G, D = self.sse.numel(), self.sum_x.numel()
        sse, sum_x, sum_sq, tokens = buf[:G], buf[G:G + D], buf[G + D], buf[G + D + 1]
        total_var = sum_sq - sum_x.pow(2).sum() / tokens  # sum over tokens of ||x - mean||^2
        ev = 1.0 - sse / total_var.clamp_min(1e-12)
        out = {
            "mse": float(sse[-1] / tokens),
            "explained_variance": float(ev[-1]),
            # n_selected is already a global count per step
            "l0": self.selected / max(1.0, float(tokens)),
            "aux_loss": float(buf[G + D + 2]) / max(1, self.steps * world_size),
        }
        for w, e in zip(widths, ev.tolist()):
            out[f"explained_variance/{w}"] = e
        return out


class MetricsLogger:
    """Appends one JSON line per log step; mirrors to wandb/tensorboard when configured."""

    def __init__(
        self, out_dir: Path, *, enabled: bool, wandb_project: str | None = None,
        tensorboard_dir: str | None = None, run_config: dict[str, Any] | None = None,
    ) -> None:
        self.path = out_dir / METRICS_FILE
        self.enabled = enabled
        self._wandb = None
        self._tb = None
        if not enabled:
            return
        if wandb_project:
            try:
                import wandb

                self._wandb = wandb.init(project=wandb_project, config=run_config or {})
            except Exception as exc:  # optional dependency: training goes on without it
                log.warning("wandb logging disabled: %s", exc)
        if tensorboard_dir:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(tensorboard_dir)
            except Exception as exc:
                log.warning("tensorboard logging disabled: %s", exc)

    def truncate_after(self, step: int) -> None:
        """Drop lines logged after ``step`` (a resumed run logs them again)."""
        if not self.enabled or not self.path.exists():
            return
        keep = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        self.path.write_text("".join(f"{line}\n" for line in keep))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as fh:
            fh.write(json.dumps({"step": step, **metrics}, sort_keys=True) + "\n")
        if self._wandb is not None:
            self._wandb.log(metrics, step=step)
        if self._tb is not None:
            for key, value in metrics.items():
                self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
        if self._tb is not None:
            self._tb.close()


def read_metrics(out_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(out_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
