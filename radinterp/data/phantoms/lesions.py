"""Pathological findings: cardiomegaly, effusion, pneumothorax, consolidation, nodule/mass,
edema, atelectasis, rib fracture. Each draws on the density layers and returns its mask."""

from __future__ import annotations

from typing import Any

import numpy as np

from radinterp.data.phantoms.anatomy import (
    Layers,
    Patient,
    envelope_distance,
    rib_centre_offset,
    side_sign,
)
from radinterp.data.phantoms.canvas import Canvas, clip
from radinterp.data.phantoms.finding_base import Attrs, Finding, pick_side, register, sides_of

LOBES = {
    # lobe -> (side, x as fraction of thoracic half-width, y relative to apex / dome)
    "right upper lobe": ("right", 0.55, ("apex", 0.14)),
    "right middle lobe": ("right", 0.42, ("dome", -0.11)),
    "right lower lobe": ("right", 0.62, ("dome", -0.04)),
    "left upper lobe": ("left", 0.55, ("apex", 0.15)),
    "left lower lobe": ("left", 0.66, ("dome", -0.03)),
}


def _lobe_centre(p: Patient, lobe: str) -> tuple[float, float, str]:
    side, fx, (ref, off) = LOBES[lobe]
    y = (p.ya if ref == "apex" else p.dome(side)) + off
    return p.mid + side_sign(side) * fx * p.tw, y, side


def _blob(c: Canvas, cx: float, cy: float, r: float, seed: float, rough: float) -> np.ndarray:
    """Irregular soft blob of radius ~``r``."""
    dx, dy = c.x - cx, c.y - cy
    th = np.arctan2(dy, dx)
    wob = 1 + rough * (np.sin(3 * th + seed) * 0.6 + np.sin(5 * th + 2 * seed) * 0.4)
    d = r * wob - np.sqrt(dx * dx + dy * dy)
    return c.ramp(d, 3.0)


@register
class Cardiomegaly(Finding):
    name = "cardiomegaly"
    observation = "Cardiomegaly"
    default_rate = 0.18
    severities = ("mild", "moderate", "severe")
    _ctr = (0.55, 0.60, 0.66)

    def sample(self, rng: np.random.Generator, patient: Patient, cfg: Any = None) -> Attrs:
        return self.regrade({"jitter": float(rng.uniform(-0.015, 0.015))}, int(rng.integers(3)))

    def regrade(self, attrs: Attrs, severity: int) -> Attrs:
        out = super().regrade(attrs, severity)
        out["ctr"] = round(self._ctr[severity] + attrs["jitter"], 3)
        return out

    def anatomy(self, attrs: Attrs, patient: Patient) -> dict[str, Any]:
        return {"ctr": attrs["ctr"], "heart_ry": patient.heart_ry * 1.08}

    def draw(self, layers: Layers, c: Canvas, patient: Patient, attrs: Attrs) -> np.ndarray:
        return layers.heart > 0.5


@register
class PleuralEffusion(Finding):
    name = "pleural_effusion"
    observation = "Pleural Effusion"
    default_rate = 0.2
    severities = ("small", "moderate", "large")

    def sample(self, rng: np.random.Generator, patient: Patient, cfg: Any = None) -> Attrs:
        sev = int(rng.choice(3, p=[0.45, 0.35, 0.2]))
        return self.regrade({"side": pick_side(rng, bilateral=0.3)}, sev)

    def draw(self, layers: Layers, c: Canvas, patient: Patient, attrs: Attrs) -> np.ndarray:
        ax = layers.extra["ax"]
        mask = np.zeros(ax.shape, dtype=bool)
        for side in sides_of(attrs["side"]):
            dome = patient.dome(side)
            level = (dome + patient.cp * 0.45, dome - 0.05, dome - 0.20)[attrs["severity"]]
            top = level - 0.06 * (ax / patient.tw) ** 2  # meniscus climbs laterally
            fill = c.ramp(c.y - top, 4.0) * layers.lung[side]
            layers.density += fill * 0.40
            layers.vessels *= 1 - fill
            mask |= fill > 0.5
        return mask


@register
class Pneumothorax(Finding):
    name = "pneumothorax"
    observation = "Pneumothorax"
    default_rate = 0.1
    severities = ("small", "moderate", "large")
    _shrink = (0.90, 0.80, 0.66)

    def sample(self, rng: np.random.Generator, patient: Patient, cfg: Any = None) -> Attrs:
        return self.regrade({"side": pick_side(rng)}, int(rng.choice(3, p=[0.4, 0.35, 0.25])))

    def draw(self, layers: Layers, c: Canvas, patient: Patient, attrs: Attrs) -> np.ndarray:
        side = attrs["side"]
        f = self._shrink[attrs["severity"]]
        axc, ayc = patient.mid + side_sign(side) * 0.12, patient.dome(side)
        d = envelope_distance(axc + (c.x - axc) / f, ayc + (c.y - ayc) / f, patient, side) * f
        collapsed = c.ramp(d)
        lung = layers.lung[side]
        rim = lung * (1 - collapsed)
        line = clip(1 - np.abs(d) / (1.0 * c.px), 0, 1) * (lung > 0.5)
        layers.density += -rim * 0.10 + collapsed * lung * 0.05 + line * 0.22
        layers.vessels *= 1 - rim
        return rim > 0.5


@register
class Consolidation(Finding):
    name = "consolidation"
    observation = "Consolidation"
    default_rate = 0.15
    severities = ("small", "moderate", "extensive")
    _radius = (0.05, 0.075, 0.105)

    def sample(self, rng: np.random.Generator, patient: Patient, cfg: Any = None) -> Attrs:
        lobe = str(rng.choice(list(LOBES)))
        attrs = {"lobe": lobe, "side": LOBES[lobe][0], "seed": float(rng.uniform(0, 6.28))}
        return self.regrade(attrs, int(rng.integers(3)))

    def draw(self, layers: Layers, c: Canvas, patient: Patient, attrs: Attrs) -> np.ndarray:
        cx, cy, side = _lobe_centre(patient, attrs["lobe"])
        r = self._radius[attrs["severity"]]
        blob = _blob(c, cx, cy, r, attrs["seed"], 0.25) * layers.lung[side]
        tex = 0.8 + 0.2 * np.sin(c.x * 90 + attrs["seed"]) * np.sin(c.y * 70)
        layers.density += blob * 0.36 * tex
        layers.vessels *= 1 - 0.7 * blob
        return blob > 0.5


@register
class LungNodule(Finding):
    name = "lung_nodule"
    observation = "Lung Lesion"
    default_rate = 0.1
    severities = ()
    size_range_mm: tuple[float, float] = (10.0, 50.0)

    def sample(self, rng: np.random.Generator, patient: Patient, cfg: Any = None) -> Attrs:
        side = pick_side(rng)
        zone = str(rng.choice(["upper", "mid", "lower"]))
        lo, hi = cfg.lesion_size_mm if cfg is not None else self.size_range_mm
        size = float(np.round(rng.uniform(lo, hi)))
        return {
            "side": side,
            "zone": zone,
            "size_mm": size,
            "kind": "mass" if size >= 30 else "nodule",
            "fx": float(rng.uniform(0.38, 0.72)),
            "seed": float(rng.uniform(0, 6.28)),
        }

    def regrade(self, attrs: Attrs, severity: int) -> Attrs:
        out = dict(attrs)
        out["size_mm"] = float(np.round(attrs["size_mm"] * (0.7, 1.0, 1.35)[severity]))
        out["kind"] = "mass" if out["size_mm"] >= 30 else "nodule"
        return out

    def draw(self, layers: Layers, c: Canvas, patient: Patient, attrs: Attrs) -> np.ndarray:
        side = attrs["side"]
        span = patient.dome(side) - patient.ya
        fy = {"upper": 0.25, "mid": 0.5, "lower": 0.72}[attrs["zone"]]
        cx = patient.mid + side_sign(side) * attrs["fx"] * patient.tw
        cy = patient.ya + fy * span
        r = patient.cm(attrs["size_mm"] / 10.0) / 2
        rough = 0.15 if attrs["kind"] == "mass" else 0.04
        disc = _blob(c, cx, cy, max(r, 1.5 * c.px), attrs["seed"], rough)
        layers.density += disc * 0.42
        layers.vessels *= 1 - disc
        return disc > 0.5


@register
class Edema(Finding):
    name = "edema"
    observation = "Edema"
    default_rate = 0.12
    severities = ("mild", "moderate", "severe")

    def sample(self, rng: np.random.Generator, patient: Patient, cfg: Any = None) -> Attrs:
        return self.regrade({"side": "bilateral"}, int(rng.integers(3)))

    def draw(self, layers: Layers, c: Canvas, patient: Patient, attrs: Attrs) -> np.ndarray:
        amp = (0.16, 0.26, 0.36)[attrs["severity"]]
        haze_all = np.zeros_like(c.x)
        for side in ("right", "left"):
            hx, hy = patient.hilum(side)
            r2 = ((c.x - hx) / 0.20) ** 2 + ((c.y - hy) / 0.24) ** 2
            haze_all += np.exp(-r2) * layers.lung[side]
        layers.density += amp * haze_all
        layers.vessels *= 1.0 + 0.3 * haze_all  # indistinct, engorged vessels
        if attrs["severity"] > 0:  # Kerley B lines at the lateral bases
            ax = layers.extra["ax"]
            lat = c.ramp(ax - (patient.outer(c.y) - 0.05), 3.0)
            low = c.ramp(c.y - (patient.yd_r - 0.12), 3.0)
            lines = (np.cos(2 * np.pi * c.y / 0.014) > 0.75) * lat * low
            layers.density += 0.10 * lines * (layers.lung["right"] + layers.lung["left"])
        return haze_all > 0.45


@register
class Atelectasis(Finding):
    name = "atelectasis"
    observation = "Atelectasis"
    default_rate = 0.12
    severities = ("minimal", "mild", "moderate")

    def sample(self, rng: np.random.Generator, patient: Patient, cfg: Any = None) -> Attrs:
        attrs = {
            "side": pick_side(rng, bilateral=0.35),
            "kind": str(rng.choice(["plate-like", "basilar"])),
            "tilt": float(rng.uniform(-0.15, 0.15)),
        }
        return self.regrade(attrs, int(rng.integers(3)))

    def draw(self, layers: Layers, c: Canvas, patient: Patient, attrs: Attrs) -> np.ndarray:
        mask = np.zeros(c.x.shape, dtype=bool)
        thick = (0.010, 0.014, 0.02)[attrs["severity"]] * (2.2 if attrs["kind"] == "basilar" else 1)
        for side in sides_of(attrs["side"]):
            sg = side_sign(side)
            u = (c.x - patient.mid) * sg / patient.tw
            yc = patient.dome(side) - 0.055 + attrs["tilt"] * (u - 0.6) * 0.2
            band = c.ramp(thick - np.abs(c.y - yc), 2.0) * c.ramp(0.3 - np.abs(u - 0.6), 3.0)
            band = band * layers.lung[side]
            layers.density += band * 0.34
            layers.vessels *= 1 - band
            mask |= band > 0.5
        return mask


@register
class RibFracture(Finding):
    name = "rib_fracture"
    observation = "Fracture"
    default_rate = 0.06
    severities = ()

    def sample(self, rng: np.random.Generator, patient: Patient, cfg: Any = None) -> Attrs:
        displaced = bool(rng.random() < 0.6)
        return {
            "side": pick_side(rng),
            "rib_index": int(rng.integers(3, 8)),
            "u": float(rng.uniform(0.65, 0.88)),
            "displaced": displaced,
        }

    def rib_number(self, attrs: Attrs) -> int:
        return attrs["rib_index"] + 2

    def regrade(self, attrs: Attrs, severity: int) -> Attrs:
        return dict(attrs)

    def anatomy(self, attrs: Attrs, patient: Patient) -> dict[str, Any]:
        sp = (patient.yd_r - patient.ya + 0.06) / 9.5
        step = (0.5 if attrs["displaced"] else 0.2) * sp
        return {"rib_break": (attrs["side"], attrs["rib_index"], attrs["u"], step)}

    def draw(self, layers: Layers, c: Canvas, patient: Patient, attrs: Attrs) -> np.ndarray:
        sp = (patient.yd_r - patient.ya + 0.06) / 9.5
        u = attrs["u"]
        cy = (attrs["rib_index"] + 0.2) * sp + rib_centre_offset(patient, u) + patient.ya - 0.02
        cx = patient.mid + side_sign(attrs["side"]) * u * patient.tw
        return np.hypot(c.x - cx, c.y - cy) < 0.03
