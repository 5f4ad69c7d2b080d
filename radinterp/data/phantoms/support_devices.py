"""Support devices: pacemaker, endotracheal tube, nasogastric tube, central venous catheter,
sternotomy wires. Devices are drawn as white (very dense) polylines in pixel space."""

from __future__ import annotations

from typing import Any

import numpy as np

from radinterp.data.phantoms.anatomy import Layers, Patient, side_sign
from radinterp.data.phantoms.canvas import Canvas, ellipse_points, polyline_coverage, smooth_curve
from radinterp.data.phantoms.finding_base import Attrs, Finding, register


class Device(Finding):
    device = True
    observation = "Support Devices"
    subtype = ""
    """Device-subtype label it makes positive."""

    @property
    def label(self) -> str:
        return self.subtype

    def regrade(self, attrs: Attrs, severity: int) -> Attrs:
        return dict(attrs)

    @staticmethod
    def _paint(layers: Layers, cov: np.ndarray, density: float) -> np.ndarray:
        layers.density += cov * density
        return cov > 0.3


@register
class Pacemaker(Device):
    name = "pacemaker"
    subtype = "Pacemaker"
    default_rate = 0.07

    def sample(self, rng: np.random.Generator, patient: Patient, cfg: Any = None) -> Attrs:
        return {
            "side": "left" if rng.random() < 0.8 else "right",
            "leads": int(rng.choice([1, 2, 2, 3])),
            "jx": float(rng.uniform(-0.03, 0.03)),
        }

    def draw(self, layers: Layers, c: Canvas, p: Patient, attrs: Attrs) -> np.ndarray:
        sg = side_sign(attrs["side"])
        gx, gy = p.mid + sg * (0.62 * p.tw + attrs["jx"]), p.ya + 0.09
        gen = np.array([[gx - 0.018, gy], [gx + 0.018, gy + 0.004]])
        cov = polyline_coverage(c, gen, 0.055)
        cov = np.maximum(cov, 0)
        layers.density += cov * 1.1
        ra = (p.mid - 0.07, p.yd_r - 0.13)
        targets = [(p.mid + 0.06, p.yd_r - 0.02), ra, (p.mid + 0.13, p.yd_r - 0.10)]
        leads = np.zeros_like(cov)
        for tx, ty in targets[: attrs["leads"]]:
            ctrl = np.array(
                [
                    [gx - sg * 0.01, gy + 0.01],
                    [p.mid + sg * 0.12, p.ya + 0.06],
                    [p.mid - 0.035, p.ya + 0.20],
                    [p.mid - 0.045, p.ya + 0.32],
                    [tx, ty],
                ]
            )
            leads = np.maximum(leads, polyline_coverage(c, smooth_curve(ctrl, 8), 0.009))
        layers.density += leads * 1.0
        return (cov > 0.3) | (leads > 0.3)


@register
class EndotrachealTube(Device):
    name = "endotracheal_tube"
    subtype = "Endotracheal Tube"
    default_rate = 0.1

    def sample(self, rng: np.random.Generator, patient: Patient, cfg: Any = None) -> Attrs:
        return {"tip_cm_above_carina": float(np.round(rng.uniform(2.5, 6.5), 1))}

    def draw(self, layers: Layers, c: Canvas, p: Patient, attrs: Attrs) -> np.ndarray:
        cx, cy = p.carina()
        tip = cy - p.cm(attrs["tip_cm_above_carina"])
        path = np.array([[p.mid + 0.004, -0.05], [p.mid + 0.002, p.ya], [cx, tip]])
        wall = polyline_coverage(c, path, 0.028)
        stripe = polyline_coverage(c, path + [0.007, 0], 0.011)
        layers.density += wall * 0.15 + stripe * 1.3
        return wall > 0.3


NG_POSITIONS = {
    # position -> malpositioned?
    "stomach": False,
    "distal esophagus": True,
    "right lower lobe bronchus": True,
}


@register
class NasogastricTube(Device):
    name = "nasogastric_tube"
    subtype = "Nasogastric Tube"
    default_rate = 0.08
    malposition_rate: float = 0.3

    def sample(self, rng: np.random.Generator, patient: Patient, cfg: Any = None) -> Attrs:
        rate = cfg.ng_malposition_rate if cfg is not None else self.malposition_rate
        if rng.random() < rate:
            pos = str(rng.choice(["distal esophagus", "right lower lobe bronchus"]))
        else:
            pos = "stomach"
        return {"position": pos, "malpositioned": NG_POSITIONS[pos]}

    def path(self, p: Patient, position: str) -> np.ndarray:
        cx, cy = p.carina()
        top = [[p.mid + 0.012, -0.05], [p.mid + 0.014, p.ya + 0.05]]
        if position == "right lower lobe bronchus":
            rest = [[cx - 0.002, cy - 0.02], [cx - 0.05, cy + 0.05], [p.mid - 0.14, p.yd_r - 0.06]]
        else:
            dl = p.yd_l
            rest = [[p.mid + 0.022, cy + 0.04], [p.mid + 0.035, dl - 0.07]]
            if position == "stomach":
                rest += [[p.mid + 0.07, dl + 0.05], [p.mid + 0.17, dl + 0.075]]
        return smooth_curve(np.array(top + rest), 10)

    def draw(self, layers: Layers, c: Canvas, p: Patient, attrs: Attrs) -> np.ndarray:
        cov = polyline_coverage(c, self.path(p, attrs["position"]), 0.010)
        return self._paint(layers, cov, 0.9)


CVC_APPROACHES = ("right internal jugular", "left internal jugular", "right subclavian",
                  "left subclavian")
CVC_TIPS = {"SVC": 0.22, "cavoatrial junction": 0.29, "right atrium": 0.35}


@register
class CentralVenousCatheter(Device):
    name = "central_venous_catheter"
    subtype = "Central Venous Catheter"
    default_rate = 0.1

    def sample(self, rng: np.random.Generator, patient: Patient, cfg: Any = None) -> Attrs:
        return {
            "approach": str(rng.choice(CVC_APPROACHES, p=[0.5, 0.15, 0.2, 0.15])),
            "tip": str(rng.choice(list(CVC_TIPS), p=[0.55, 0.3, 0.15])),
        }

    def draw(self, layers: Layers, c: Canvas, p: Patient, attrs: Attrs) -> np.ndarray:
        side, kind = attrs["approach"].split(" ", 1)
        sg = side_sign(side)
        tip = [p.mid - 0.038, p.ya + CVC_TIPS[attrs["tip"]]]
        if kind == "internal jugular":
            ctrl = [[p.mid + sg * 0.10, -0.05], [p.mid + sg * 0.06, p.ya + 0.04]]
        else:
            ctrl = [[p.mid + sg * (p.tw + 0.08), p.ya + 0.0], [p.mid + sg * 0.17, p.ya + 0.065]]
        ctrl += [[p.mid + sg * 0.025 - 0.02, p.ya + 0.12], [p.mid - 0.035, p.ya + 0.16], tip]
        cov = polyline_coverage(c, smooth_curve(np.array(ctrl), 10), 0.009)
        return self._paint(layers, cov, 0.75)


@register
class SternotomyWires(Device):
    name = "sternotomy_wires"
    subtype = "Sternotomy Wires"
    default_rate = 0.06

    def sample(self, rng: np.random.Generator, patient: Patient, cfg: Any = None) -> Attrs:
        return {"count": int(rng.integers(5, 8)), "jx": float(rng.normal(0, 0.006))}

    def draw(self, layers: Layers, c: Canvas, p: Patient, attrs: Attrs) -> np.ndarray:
        n = attrs["count"]
        ys = np.linspace(p.ya + 0.17, p.yd_r - 0.05, n)
        cov = np.zeros_like(c.x)
        for i, yy in enumerate(ys):
            xx = p.mid + attrs["jx"] + 0.004 * np.sin(i * 1.7)
            loop = ellipse_points(xx, yy, 0.016, 0.009, 14)
            cov = np.maximum(cov, polyline_coverage(c, loop, 0.006))
            tail = np.array([[xx + 0.014, yy], [xx + 0.024, yy + 0.004]])
            cov = np.maximum(cov, polyline_coverage(c, tail, 0.006))
        return self._paint(layers, cov, 1.3)
