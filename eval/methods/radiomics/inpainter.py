"""The learned healthy persona: a tiny conditional diffusion inpainter (DDPM training, DDIM
sampling) trained on healthy images only.

It sees ``[x_t, image with the region blanked, region mask]`` (3 channels at ``res x res``,
standardised by the known pixels' mean and std) and predicts the clean image (x0
parametrisation: on a few minutes of CPU it learns the low frequencies far sooner than
noise prediction does); trained on healthy radiographs with their lung regions blanked, it
learns to fill a lung region from its surroundings (exposure, body habitus, heart, ribs)
with healthy lung. Applied to any study it paints the region over with what a healthy lung
would look like there: the study's learned persona. Low resolution on purpose (48 px, a few
minutes of CPU training); the fill is upsampled and pasted into the region at full size.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

log = logging.getLogger(__name__)


@dataclass
class InpainterConfig:
    """Size and training of the persona inpainter."""

    res: int = 48
    """Side the inpainter works at (images and masks are resized to it)."""
    width: int = 8
    """Channels of the UNet's first level (doubled at each of its two downsamplings)."""
    timesteps: int = 200
    """DDPM noise levels (linear beta schedule 1e-4 .. 0.02 scaled to this count)."""
    sample_steps: int = 10
    """DDIM steps when painting a persona (deterministic given the seed)."""
    train_steps: int = 300
    """Optimiser steps."""
    batch_size: int = 32
    """Images per step."""
    lr: float = 2e-3
    """AdamW learning rate (cosine decay to 0)."""
    seed: int = 0
    """Seed of initialisation, batches, noise and sampling."""
    keep_detail: bool = True
    """Add the image's own detail finer than ``res`` (image minus its ``res``-pixel blur) back
    onto the upsampled fill: the inpainter paints what it resolves (lung density, large
    opacities); without it the persona is a blurred lung and every residual carries the blur."""

    def __post_init__(self) -> None:
        if self.res < 16 or self.res % 4:
            raise ValueError(f"inpainter res must be a multiple of 4 and >= 16, got {self.res}")
        if not 1 <= self.sample_steps <= self.timesteps:
            raise ValueError(f"sample_steps must be in 1..timesteps ({self.timesteps}), "
                             f"got {self.sample_steps}")
        for name in ("width", "train_steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"inpainter {name} must be >= 1, got {getattr(self, name)}")


def _time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / half)
    a = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([a.sin(), a.cos()], 1)  # (B, dim)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, tdim: int) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(cin, cout, 3, padding=1), nn.Conv2d(cout, cout, 3, padding=1)
        self.t = nn.Linear(tdim, cout)
        self.n1, self.n2 = nn.GroupNorm(4, cout), nn.GroupNorm(4, cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.n1(self.c1(x))) + self.t(temb)[:, :, None, None]
        return F.silu(self.n2(self.c2(h))) + self.skip(x)


class TinyUNet(nn.Module):
    """Two-level UNet: (B, 3, R, R) + timestep (B,) -> predicted noise (B, 1, R, R)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w, self.tdim = width, 4 * width
        self.temb = nn.Sequential(nn.Linear(w, self.tdim), nn.SiLU(), nn.Linear(self.tdim, self.tdim))
        self.d1, self.d2 = _Block(3, w, self.tdim), _Block(w, 2 * w, self.tdim)
        self.mid = _Block(2 * w, 4 * w, self.tdim)
        self.u2, self.u1 = _Block(6 * w, 2 * w, self.tdim), _Block(3 * w, w, self.tdim)
        self.out = nn.Conv2d(w, 1, 1)
        self.width = w

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e = self.temb(_time_embedding(t, self.width))  # (B, tdim)
        h1 = self.d1(x, e)  # (B, w, R, R)
        h2 = self.d2(F.avg_pool2d(h1, 2), e)  # (B, 2w, R/2, R/2)
        m = self.mid(F.avg_pool2d(h2, 2), e)  # (B, 4w, R/4, R/4)
        u2 = self.u2(torch.cat([F.interpolate(m, scale_factor=2.0), h2], 1), e)
        u1 = self.u1(torch.cat([F.interpolate(u2, scale_factor=2.0), h1], 1), e)
        return self.out(u1)  # (B, 1, R, R)


def _alphas_bar(timesteps: int) -> torch.Tensor:
    betas = torch.linspace(1e-4, 0.02 * 1000 / timesteps, timesteps).clamp(max=0.999)
    return torch.cumprod(1 - betas, 0)  # (T,)


def _to_res(arr: np.ndarray, res: int, mode: str) -> torch.Tensor:
    """(N, H, W) array -> (N, 1, res, res) float tensor."""
    x = torch.from_numpy(np.asarray(arr, np.float32))[:, None]
    if x.shape[-1] == res and x.shape[-2] == res:
        return x
    return F.interpolate(x, size=(res, res), mode=mode, **({"align_corners": False, "antialias": True}
                                                          if mode == "bilinear" else {}))


def _cond(known: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.cat([known * (1 - mask), mask], 1)  # (B, 2, R, R)


def _normalise(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x standardised by the mean / std of its pixels outside the region, mean, std), each
    (B, 1, 1, 1) statistic per image: exposure and contrast come from the known pixels, so the
    inpainter learns lung *relative to* its surroundings."""
    out = 1 - mask
    n = out.sum((2, 3), keepdim=True).clamp(min=1)
    mu = (x * out).sum((2, 3), keepdim=True) / n
    sd = (((x - mu) ** 2 * out).sum((2, 3), keepdim=True) / n).sqrt().clamp(min=1.0)
    return (x - mu) / sd, mu, sd


def train_inpainter(images: np.ndarray, masks: np.ndarray, cfg: InpainterConfig,
                    progress: bool = True) -> TinyUNet:
    """Train on healthy ``images`` (N, H, W) on 0-255 with their regions ``masks`` (N, H, W)."""
    if len(images) == 0:
        raise ValueError("no healthy training images for the persona inpainter; pass a dataset "
                         "with normal studies or use --persona oracle / none")
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    m = (_to_res(masks.astype(np.float32), cfg.res, "bilinear") > 0.5).float()
    x0 = _normalise(_to_res(images, cfg.res, "bilinear"), m)[0]  # (N, 1, R, R), ~unit scale
    model, ab = TinyUNet(cfg.width), _alphas_bar(cfg.timesteps)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.train_steps)
    bar = tqdm(range(cfg.train_steps), desc="persona inpainter", disable=not progress)
    for step in bar:
        idx = torch.randint(len(x0), (cfg.batch_size,), generator=g)
        x, mk = x0[idx], m[idx]
        t = torch.randint(cfg.timesteps, (cfg.batch_size,), generator=g)
        noise = torch.randn(x.shape, generator=g)
        a = ab[t][:, None, None, None]
        xt = a.sqrt() * x + (1 - a).sqrt() * noise
        pred = model(torch.cat([xt, _cond(x, mk)], 1), t)  # x0-prediction
        w = 1 + 4 * mk  # the region is what it must paint
        loss = (w * (pred - x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    log.info("persona inpainter trained on %d healthy images, last loss %.4f", len(x0), loss.item())
    return model.eval()


@torch.no_grad()
def paint(model: TinyUNet, images: np.ndarray, masks: np.ndarray, cfg: InpainterConfig,
          batch_size: int = 64) -> np.ndarray:
    """Personas (N, H, W) on 0-255: ``images`` outside ``masks``, the inpainter's healthy fill
    (upsampled from ``res``, plus the image's finer detail with ``keep_detail``) inside;
    deterministic given ``cfg.seed``."""
    n, h, w = images.shape
    out = np.empty((n, h, w), np.float32)
    ab = _alphas_bar(cfg.timesteps)
    ts = torch.linspace(cfg.timesteps - 1, 0, cfg.sample_steps).round().long()
    for s in range(0, n, batch_size):
        img = images[s:s + batch_size]
        mk = (_to_res(masks[s:s + batch_size].astype(np.float32), cfg.res, "bilinear") > 0.5).float()
        low = _to_res(img, cfg.res, "bilinear")  # (B, 1, R, R) on 0-255
        known, mu, sd = _normalise(low, mk)
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + s)
        x = torch.randn(known.shape, generator=g)
        cond = _cond(known, mk)
        for i, t in enumerate(ts):
            a = ab[t]
            x0 = model(torch.cat([x, cond], 1), t.repeat(len(x))).clamp(-6, 6)
            eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
            a_next = ab[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0)
            x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
        fill = F.interpolate(x0 * sd + mu, size=(h, w), mode="bilinear", align_corners=False)
        if cfg.keep_detail:
            blur = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
            fill = fill + torch.from_numpy(np.asarray(img, np.float32))[:, None] - blur
        fill = fill[:, 0].clamp(0, 255).numpy()  # (B, H, W)
        region = masks[s:s + batch_size].astype(bool)
        out[s:s + batch_size] = np.where(region, fill, img)
    return out
