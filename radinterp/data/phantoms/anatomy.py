"""Phantom patients: sampled anatomy and its vectorised density rendering.

The renderer builds a *density* map (how much tissue the beam crosses) from closed-form
shapes evaluated on the canvas grid: body outline, lungs (air removes density), heart and
mediastinum, diaphragm and abdomen, spine, ribs, clavicles, scapulae, humeral heads, lung
vessels. :mod:`radinterp.data.phantoms.render` turns density into film brightness.
Sides are the patient's: ``"right"`` is the image's left half.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from radinterp.data.phantoms.canvas import Canvas, clip, polyline_coverage, smooth_curve

SIDES = ("right", "left")


def side_sign(side: str) -> float:
    """-1 for the patient's right (image left), +1 for the left."""
    return -1.0 if side == "right" else 1.0


@dataclass(frozen=True)
class Patient:
    """Anatomy of one phantom patient (normalised patient coordinates)."""

    sex: str
    """'M' or 'F' (F adds breast shadows)."""
    age: int
    """Age in years (report text only)."""
    mid: float
    """x of the spine / midline."""
    tw: float
    """Thoracic half-width (inner rib margin)."""
    ya: float
    """y of the lung apices."""
    yd_r: float
    """y of the top of the right hemidiaphragm dome."""
    yd_l: float
    """y of the top of the left hemidiaphragm dome (usually lower than the right)."""
    cp: float
    """Depth of the costophrenic recesses below the dome tops."""
    mw: float
    """Superior mediastinum half-width."""
    ctr: float
    """Cardiothoracic ratio (heart width / thoracic width); > 0.5 is cardiomegaly."""
    heart_off: float
    """Heart centre offset towards the patient's left."""
    heart_ry: float
    """Heart half-height."""
    wall: float
    """Chest wall soft-tissue thickness."""
    soft: float
    """Soft-tissue density scale (body habitus)."""
    bone: float
    """Bone density scale."""
    rib_curve: float
    """Lateral downward curvature of the posterior ribs."""
    vessel_phase: tuple[float, float, float, float]
    """Random phases of the lung-marking pattern."""
    rib_break: tuple[str, int, float, float] | None = None
    """(side, rib index, lateral position 0..1, step) of a fractured rib, else None."""

    @property
    def thoracic_width(self) -> float:
        return 2 * self.tw

    def dome(self, side: str) -> float:
        return self.yd_r if side == "right" else self.yd_l

    def carina(self) -> tuple[float, float]:
        return self.mid, self.ya + 0.235

    def hilum(self, side: str) -> tuple[float, float]:
        return self.mid + side_sign(side) * 0.11, self.ya + 0.28

    def cm(self, centimetres: float) -> float:
        """Patient units per ``centimetres`` (thoracic width taken as 30 cm)."""
        return centimetres * self.thoracic_width / 30.0

    def diaphragm_y(self, side: str, ax: np.ndarray | float) -> np.ndarray | float:
        """y of the hemidiaphragm at distance ``ax`` from the midline."""
        peak = 0.42 * self.tw
        lat = clip((ax - peak) / (0.58 * self.tw), 0, None)
        med = clip((peak - ax) / peak, 0, None)
        return self.dome(side) + self.cp * lat * np.sqrt(lat) + 0.10 * med * med

    def outer(self, y: np.ndarray | float) -> np.ndarray | float:
        """Lateral lung margin (distance from midline) at height ``y``."""
        t = clip((y - self.ya) / (self.yd_r - self.ya), 0, 1)
        return self.tw * (0.74 + 0.26 * np.sqrt(t))

    def with_overrides(self, **kw) -> Patient:
        return dataclasses.replace(self, **kw)


def sample_patient(rng: np.random.Generator) -> Patient:
    """Draw one patient's anatomy."""
    yd_r = rng.uniform(0.62, 0.70)
    return Patient(
        sex=str(rng.choice(["M", "F"])),
        age=int(rng.integers(22, 92)),
        mid=float(0.5 + rng.normal(0, 0.008)),
        tw=float(rng.uniform(0.32, 0.38)),
        ya=float(rng.uniform(0.10, 0.15)),
        yd_r=float(yd_r),
        yd_l=float(yd_r + rng.uniform(0.012, 0.04)),
        cp=float(rng.uniform(0.10, 0.14)),
        mw=float(rng.uniform(0.058, 0.075)),
        ctr=float(rng.uniform(0.40, 0.47)),
        heart_off=float(rng.uniform(0.03, 0.05)),
        heart_ry=float(rng.uniform(0.17, 0.20)),
        wall=float(rng.uniform(0.04, 0.08)),
        soft=float(rng.uniform(0.85, 1.15)),
        bone=float(rng.uniform(0.8, 1.2)),
        rib_curve=float(rng.uniform(0.16, 0.22)),
        vessel_phase=tuple(float(v) for v in rng.uniform(0, 2 * np.pi, 4)),  # type: ignore
    )


@dataclass
class Layers:
    """Rendered density components of one image (all ``(S, S)`` float32)."""

    density: np.ndarray
    """Everything but lung markings."""
    vessels: np.ndarray
    """Lung markings (vessels), kept apart so a pneumothorax can remove them."""
    lung: dict[str, np.ndarray]
    """Aerated lung per side, soft mask in [0, 1] (heart and mediastinum excluded)."""
    heart: np.ndarray
    """Heart soft mask."""
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    """Auxiliary arrays findings may need (``ax`` distance from midline, ``x``, ``y``)."""

    def copy(self) -> Layers:
        return Layers(
            self.density.copy(), self.vessels.copy(), dict(self.lung), self.heart, self.extra
        )


def envelope_distance(
    x: np.ndarray, y: np.ndarray, p: Patient, side: str, dia: np.ndarray | None = None
) -> np.ndarray:
    """Approximate signed distance to one lung's envelope (positive inside), heart ignored.
    ``dia`` is the precomputed diaphragm height at ``x`` when the caller has it."""
    dx = x - p.mid
    ax = np.abs(dx)
    d_lat = p.outer(y) - ax
    d_dia = (p.diaphragm_y(side, ax) if dia is None else dia) - y
    ary = 0.20
    acx, arx = 0.48 * p.tw, 0.36 * p.tw
    e = ((ax - acx) / arx) ** 2 + ((y - (p.ya + ary)) / ary) ** 2
    d_apex = np.where(y < p.ya + ary, (1 - e) * 0.5 * arx, 1.0)
    d_med = ax - 0.015
    d = np.minimum(np.minimum(d_lat, d_dia), np.minimum(d_apex, d_med))
    return np.where(dx * side_sign(side) > 0, d, -1.0)


def _disc(c: Canvas, out: np.ndarray, cx: float, cy: float, r: float, value: float) -> None:
    """Add a soft disc of radius ``r`` (patient units) to ``out`` in place, bbox only."""
    sl = c.bbox(cx - r, cy - r, cx + r, cy + r)
    out[sl] += c.ramp(r - np.hypot(c.x[sl] - cx, c.y[sl] - cy), 2.0) * value


def _ellipse(c: Canvas, out: np.ndarray, cx: float, cy: float, rx: float, ry: float,
             value: float, soft_px: float = 1.5) -> None:
    sl = c.bbox(cx - rx, cy - ry, cx + rx, cy + ry)
    e = ((c.x[sl] - cx) / rx) ** 2 + ((c.y[sl] - cy) / ry) ** 2
    out[sl] += c.ramp((1 - e) * 0.5 * min(rx, ry), soft_px) * value


def render_anatomy(c: Canvas, p: Patient, view: str = "PA") -> Layers:
    """Density layers of ``p`` on canvas ``c``; ``view`` 'AP' magnifies the heart and
    projects the scapulae over the lungs. Small structures are computed on their bounding
    boxes only (this function dominates the generator's run time)."""
    x, y = c.x, c.y
    dx = x - p.mid
    ax = np.abs(dx)
    ap = view == "AP"

    # body outline and soft tissue (thicker centrally)
    bw = p.tw + p.wall + 0.13 * np.sqrt(clip((p.ya + 0.10 - y) / 0.16, 0, 1))
    body = c.ramp(bw - ax, 3.0) * c.ramp(y + 0.05)
    thick = np.sqrt(clip(1 - (ax / (bw + 0.02)) ** 2, 0, 1))
    dens = body * (0.30 + 0.32 * thick) * p.soft

    # heart (skewed ellipse: the left border bulges) and mediastinum
    ctr = p.ctr * (1.08 if ap else 1.0)
    hx, hy = p.mid + p.heart_off, p.yd_r + 0.035
    hrx, hry = ctr * p.tw, p.heart_ry * (1.05 if ap else 1.0)
    heart = np.zeros_like(dens)
    sl = c.bbox(hx - hrx - 0.01, hy - hry - 0.01, hx + 1.3 * hrx, hy + hry + 0.01)
    xs, ys = x[sl], y[sl]
    skew = clip((ys - (hy - hry)) / hry, 0, 1) * clip((xs - hx) / hrx + 0.3, 0, 1)
    e_h = ((xs - hx - 0.25 * hrx * skew) / hrx) ** 2 + ((ys - hy) / hry) ** 2
    heart[sl] = c.ramp((1 - e_h) * 0.5 * hry)
    medi = np.zeros_like(dens)
    sl = c.bbox(p.mid - 0.1, -0.1, p.mid + 0.1, hy)
    medi_w = p.mw * (1 + 0.35 * clip((y[sl] - p.ya) / 0.3, 0, 1))
    medi[sl] = c.ramp(medi_w - ax[sl]) * c.ramp(hy - y[sl])
    knob = np.zeros_like(dens)
    _disc(c, knob, p.mid + p.mw + 0.012, p.ya + 0.17, 0.032, 1.0)
    np.maximum(medi, knob, out=medi)
    solid = np.maximum(heart, medi)

    dia_r = p.diaphragm_y("right", ax)
    dia = {"right": dia_r, "left": dia_r + (p.yd_l - p.yd_r)}
    lung = {}
    air = np.zeros_like(dens)
    y_lo = max(p.yd_r, p.yd_l) + p.cp + 0.12
    for side in SIDES:
        sg = side_sign(side)
        sl = c.bbox(min(p.mid, p.mid + sg * 1.05 * p.tw), p.ya - 0.02,
                    max(p.mid, p.mid + sg * 1.05 * p.tw), y_lo)
        lung[side] = np.zeros_like(dens)
        env = c.ramp(envelope_distance(x[sl], y[sl], p, side, dia[side][sl]))
        lung[side][sl] = env * (1 - solid[sl])
        air += lung[side]
    lung_thick = 0.7 + 0.3 * clip(1 - np.abs(ax / p.tw - 0.5) * 1.3, 0, 1)
    dens -= air * 0.42 * lung_thick
    dens += medi * 0.12

    # abdomen below the diaphragm, gastric bubble
    abd = c.ramp(y - np.where(dx < 0, dia["right"], dia["left"]), 2.0)
    dens += abd * body * 0.18 * c.ramp(p.tw + 0.02 - ax, 10.0)
    dens += heart * 0.15 * (1 - abd)
    _ellipse(c, dens, p.mid + 0.5 * p.tw, p.yd_l + 0.055, 0.055, 0.028, -0.22)

    # trachea (air column) and main bronchi
    cx, cy = p.carina()
    sl = c.bbox(p.mid - 0.03, -0.1, p.mid + 0.03, cy)
    dens[sl] -= c.ramp(0.017 - ax[sl]) * c.ramp(cy - y[sl]) * 0.16
    for s in SIDES:
        br = np.array([[cx, cy - 0.01], [cx + side_sign(s) * 0.05, cy + 0.045]])
        dens -= polyline_coverage(c, br, 0.022) * 0.12

    # bones: spine, ribs, clavicles, humeral heads, scapulae
    bone = np.zeros_like(dens)
    sl = c.bbox(p.mid - 0.045, -0.1, p.mid + 0.045, 1.1)
    vert = 0.75 + 0.25 * np.cos(2 * np.pi * (y[sl] - p.ya) / 0.052)
    bone[sl] += c.ramp(0.034 - ax[sl], 2.0) * vert * 0.16 * c.ramp(y[sl] + 0.05)
    bone += _ribs(c, p, ax, dx) * (1 - 0.75 * abd)
    for s in SIDES:
        sg = side_sign(s)
        cy0 = p.ya + (-0.012 if ap else 0.035)
        clav = np.array(
            [
                [p.mid + sg * 0.045, cy0 + 0.02],
                [p.mid + sg * 0.16, cy0],
                [p.mid + sg * 0.27, cy0 - 0.035],
                [p.mid + sg * (p.tw + 0.07), cy0 - 0.075],
            ]
        )
        bone += polyline_coverage(c, smooth_curve(clav, 6), 0.022) * 0.22
        _disc(c, bone, p.mid + sg * (p.tw + 0.10), p.ya + 0.01, 0.055, 0.22)
        if ap:  # scapula projected over the upper lateral lung on AP films
            _ellipse(c, bone, p.mid + sg * 0.95 * p.tw, p.ya + 0.16, 0.16 * p.tw, 0.17, 0.07, 3.0)
    dens += bone * p.bone

    if p.sex == "F":  # breast shadows over the lower lateral lungs, fading upwards
        for s in SIDES:
            sg = side_sign(s)
            bx, by, brx, bry = p.mid + sg * 0.62 * p.tw, p.yd_r - 0.06, 0.55 * p.tw, 0.13
            sl = c.bbox(bx - brx, by - bry, bx + brx, by + bry)
            eb = ((x[sl] - bx) / brx) ** 2 + ((y[sl] - by) / bry) ** 2
            top = clip((y[sl] - (p.yd_r - 0.16)) / 0.10, 0, 1)
            dens[sl] += c.ramp((1 - eb) * 0.03, 3.0) * top * 0.10

    vessels = _vessels(c, p, lung)
    visible_heart = heart * (1 - abd)
    return Layers(dens, vessels, lung, visible_heart, {"ax": ax, "dx": dx, "body": body})


def rib_centre_offset(p: Patient, u: np.ndarray | float) -> np.ndarray | float:
    """Vertical offset of the posterior ribs at lateral position ``u`` (0 spine, 1 wall)."""
    return -0.05 * u + p.rib_curve * u * u


def _ribs(c: Canvas, p: Patient, ax_full: np.ndarray, dx_full: np.ndarray) -> np.ndarray:
    out = np.zeros_like(ax_full)
    sl = c.bbox(p.mid - p.tw - 0.08, p.ya - 0.06, p.mid + p.tw + 0.08,
                max(p.yd_r, p.yd_l) + p.cp + 0.2)
    y, ax, dx = c.y[sl], ax_full[sl], dx_full[sl]
    u = ax / p.tw
    outer = p.outer(y)
    sp = (p.yd_r - p.ya + 0.06) / 9.5
    w = y - rib_centre_offset(p, u) - (p.ya - 0.02)
    if p.rib_break is not None:
        side, k, uf, step = p.rib_break
        on = (dx * side_sign(side) > 0) & (u > uf)
        idx0 = np.floor(w / sp)
        w = np.where(on & (idx0 >= k - 0.5) & (idx0 <= k + 0.5), w + step, w)
    ph = w / sp
    idx = np.floor(ph)
    f = ph - idx
    band = 0.40
    edge = clip(np.minimum(f, band - f) * sp / (1.2 * c.px), 0, 1)
    cortex = 0.7 + 0.3 * np.abs(f - band / 2) / (band / 2)
    post = edge * cortex * ((idx >= 0) & (idx <= 10))
    post *= c.ramp(outer + 0.03 - ax, 3.0) * c.ramp(ax - 0.04, 4.0)
    if p.rib_break is not None:
        side, k, uf, _ = p.rib_break
        gap = np.abs(u - uf) < 0.011 / p.tw
        post = np.where(gap & (dx * side_sign(side) > 0) & (idx == k), post * 0.15, post)
    # anterior ribs: fainter, descending medially, cartilage (invisible) medially
    pa = (y - 0.16 * (1 - u) - (p.ya + 0.02)) / (sp * 1.05)
    fa = pa - np.floor(pa)
    ant = clip(np.minimum(fa, 0.35 - fa) * sp / (1.5 * c.px), 0, 1)
    ant *= ((pa >= 0) & (pa <= 6)) * c.ramp(u - 0.40, 4.0) * c.ramp(outer - ax, 3.0)
    out[sl] = post * 0.115 + ant * 0.055
    return out


def _vessels(c: Canvas, p: Patient, lung: dict[str, np.ndarray]) -> np.ndarray:
    out = np.zeros_like(c.x)
    ph = p.vessel_phase
    for i, side in enumerate(SIDES):
        m = lung[side]
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if rows.size == 0:
            continue
        sl = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        hx, hy = p.hilum(side)
        rx, ry = c.x[sl] - hx, c.y[sl] - hy
        r = np.sqrt(rx * rx + ry * ry) + 1e-4
        th = np.arctan2(ry, rx)
        wob = th * 16 + 4.0 * np.sin(r * 14 + ph[i] + 2 * th) + 2.0 * np.sin(th * 9 + ph[2 + i])
        streak = clip((np.cos(wob) - 0.55) / 0.45, 0, 1)
        fall = np.exp(-r / 0.16)
        hil = np.exp(-((r / 0.045) ** 2))
        out[sl] += (streak * fall * 0.55 + hil * 0.5) * m[sl]
    return out * 0.22
