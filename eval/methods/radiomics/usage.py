"""Usage predictor + logistic-regression head, trained jointly (the paper's fingerprint model).

A small CNN looks at the image and says, per study, how much each radiomic feature is used
(``u`` in [0, 1]^F); the head is a logistic regression on the used features,
``logit_k = b_k + sum_j W_kj * u_j * x_j`` (x standardised on the training split). The loss is
the masked multi-label BCE plus ``l1 * sum_j u_j`` averaged over studies (an L1 penalty on
usage, u >= 0). The
per-study fingerprint is the set of features with ``u_j > threshold``. Without the predictor
(``use_usage=False``, the ablation) ``u = 1`` and the head is a plain L2 logistic regression.
Early stopping keeps the epoch with the lowest validation BCE.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class UsageConfig:
    """Training of the fingerprint model."""

    l1: float = 3e-4
    """Weight of the L1 penalty on each study's summed usage (higher = sparser fingerprints)."""
    weight_decay: float = 1e-3
    """L2 penalty on the head's weights (AdamW decoupled decay)."""
    epochs: int = 30
    """Passes over the training split (the best validation epoch is kept)."""
    batch_size: int = 128
    """Studies per step."""
    lr: float = 3e-3
    """AdamW learning rate."""
    res: int = 32
    """Side the usage CNN sees the image at."""
    threshold: float = 0.5
    """Usage above which a feature is in the study's fingerprint."""
    seed: int = 0
    """Seed of initialisation and batch order."""

    def __post_init__(self) -> None:
        if self.l1 < 0 or self.weight_decay < 0:
            raise ValueError("l1 and weight_decay must be >= 0; pass e.g. l1=0.001")
        if not 0 < self.threshold < 1:
            raise ValueError(f"usage threshold must be in (0, 1), got {self.threshold}")
        for name in ("epochs", "batch_size", "res"):
            if getattr(self, name) < 1:
                raise ValueError(f"usage {name} must be >= 1, got {getattr(self, name)}")


class UsageCNN(nn.Module):
    """(B, 1, R, R) image -> (B, F) usage logits."""

    def __init__(self, n_features: int, width: int = 8) -> None:
        super().__init__()
        w = width
        self.conv = nn.Sequential(
            nn.Conv2d(1, w, 3, 2, 1), nn.SiLU(), nn.Conv2d(w, 2 * w, 3, 2, 1), nn.SiLU(),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(4 * w, n_features)
        nn.init.zeros_(self.fc.weight)
        nn.init.constant_(self.fc.bias, 2.0)  # start using every feature (u ~ 0.88)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(img))  # (B, F)


class FingerprintModel(nn.Module):
    """Usage CNN (optional) + logistic head over ``n_features`` for ``n_findings``."""

    def __init__(self, n_features: int, n_findings: int, use_usage: bool = True) -> None:
        super().__init__()
        self.usage = UsageCNN(n_features) if use_usage else None
        self.head = nn.Linear(n_features, n_findings)

    def forward(self, img: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, K), usage (B, F)) of images (B, 1, R, R) and standardised features (B, F)."""
        u = torch.sigmoid(self.usage(img)) if self.usage is not None else torch.ones_like(x)
        return self.head(u * x), u


def small_images(images: np.ndarray, res: int) -> torch.Tensor:
    """(N, H, W) on 0-255 -> (N, 1, res, res) in [0, 1] for the usage CNN."""
    x = torch.from_numpy(np.asarray(images, np.float32))[:, None] / 255.0
    return F.interpolate(x, size=(res, res), mode="area")


def _bce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean BCE over the known labels (``y`` NaN = unknown)."""
    known = ~torch.isnan(y)
    return F.binary_cross_entropy_with_logits(logits[known], y[known]) if known.any() else logits.sum() * 0


def train_fingerprint(img_tr: torch.Tensor, x_tr: np.ndarray, y_tr: np.ndarray,
                      img_va: torch.Tensor, x_va: np.ndarray, y_va: np.ndarray,
                      cfg: UsageConfig, use_usage: bool = True) -> FingerprintModel:
    """Fit on standardised features ``x_*`` (N, F), labels ``y_*`` (N, K) in {0, 1, NaN} and
    the CNN's images ``img_*`` (N, 1, R, R); keeps the best validation epoch."""
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    xt, yt = torch.from_numpy(x_tr).float(), torch.from_numpy(y_tr).float()
    xv, yv = torch.from_numpy(x_va).float(), torch.from_numpy(y_va).float()
    model = FingerprintModel(x_tr.shape[1], y_tr.shape[1], use_usage)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_state = float("inf"), copy.deepcopy(model.state_dict())
    for _ in range(cfg.epochs):
        model.train()
        for idx in torch.randperm(len(xt), generator=g).split(cfg.batch_size):
            logits, u = model(img_tr[idx], xt[idx])
            loss = _bce(logits, yt[idx]) + (cfg.l1 * u.sum(1).mean() if use_usage else 0.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val = float(_bce(model(img_va, xv)[0], yv)) if len(xv) else 0.0
        if val < best:
            best, best_state = val, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return model.eval()


@torch.no_grad()
def predict(model: FingerprintModel, img: torch.Tensor, x: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, K), usage (N, F))."""
    logits, u = model(img, torch.from_numpy(x).float())
    return torch.sigmoid(logits).numpy(), u.numpy()


@torch.no_grad()
def contributions(model: FingerprintModel, img: torch.Tensor, x: np.ndarray) -> np.ndarray:
    """(N, K, F) each feature's term ``W_kj * u_j * x_j`` in each finding's logit."""
    _, u = model(img, torch.from_numpy(x).float())
    ux = u * torch.from_numpy(x).float()  # (N, F)
    return (ux[:, None, :] * model.head.weight[None]).numpy()
