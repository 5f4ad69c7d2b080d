"""Configuration of a phantom dataset (saved as ``cfg.json`` beside it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from radinterp.config import BaseConfig
from radinterp.data.phantoms.findings import finding_names, get_finding

MIN_SIZE, MAX_SIZE = 64, 1024
MIN_LESION_MM, MAX_LESION_MM = 3.0, 80.0

FINDING_ORDER = (
    # sampling order matters for co-occurrence: "given" findings come first
    "cardiomegaly",
    "sternotomy_wires",
    "endotracheal_tube",
    "pneumothorax",
    "edema",
    "consolidation",
    "pleural_effusion",
    "atelectasis",
    "lung_nodule",
    "rib_fracture",
    "pacemaker",
    "nasogastric_tube",
    "central_venous_catheter",
)


def default_rates() -> dict[str, float]:
    return {name: get_finding(name).default_rate for name in FINDING_ORDER}


def parse_findings(spec: str) -> dict[str, float]:
    """``"cardiomegaly,pleural_effusion=0.3"`` -> rates (names without a rate get their
    default). Unknown names raise with the valid list."""
    out: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, rate = item.partition("=")
        name = name.strip()
        finding = get_finding(name)  # raises KeyError listing valid names
        try:
            out[name] = float(rate) if rate else finding.default_rate
        except ValueError:
            raise ValueError(f"rate for finding {name!r} must be a number, got {rate!r}") from None
    return out


@dataclass
class PhantomConfig(BaseConfig):
    """What to generate; two runs with equal configs produce identical datasets."""

    n: int = 100
    """Number of studies."""
    seed: int = 0
    """Master seed; study ``i`` depends only on (seed, i), not on ``n``."""
    size: int = 224
    """Image side in pixels (64..1024)."""
    findings: dict[str, float] = field(default_factory=default_rates)
    """Finding name -> probability of planting it in a non-normal study."""
    normal_fraction: float = 0.3
    """Share of studies with no finding at all."""
    prior_fraction: float = 0.3
    """Share of studies with a prior study (image + report) of the same patient."""
    ap_fraction: float = 0.3
    """Share of AP (portable) films; tubes and lines make AP more likely."""
    cooccurrence: bool = True
    """Apply the co-occurrence multipliers (e.g. edema with cardiomegaly, NG with ETT)."""
    ng_malposition_rate: float = 0.3
    """Share of nasogastric tubes whose tip is malpositioned."""
    lesion_size_mm: tuple[float, float] = (10.0, 50.0)
    """Range of nodule/mass diameters in mm (>= 30 mm is called a mass; < 10 mm is hard
    to see at 112-224 px)."""
    uncertainty_rate: float = 0.15
    """Share of positive statements that the report hedges ("possible ...")."""
    save_masks: bool = True
    """Write one PNG mask per finding per study."""

    def __post_init__(self) -> None:
        if isinstance(self.findings, str):
            self.findings = parse_findings(self.findings)
        if isinstance(self.findings, (list, tuple)):
            self.findings = {n: get_finding(n).default_rate for n in self.findings}
        self.lesion_size_mm = tuple(float(v) for v in self.lesion_size_mm)  # type: ignore
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}; pass --n 100 or more")
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise ValueError(
                f"size {self.size} px is outside {MIN_SIZE}..{MAX_SIZE}; pass e.g. --size 224"
            )
        valid = set(finding_names())
        unknown = sorted(set(self.findings) - valid)
        if unknown:
            raise ValueError(
                f"unknown finding(s) {unknown}; valid names: {', '.join(sorted(valid))}"
            )
        for name, rate in self.findings.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rate of {name!r} must be in [0, 1], got {rate}")
        # canonical order (co-occurrence depends on it)
        self.findings = {k: float(self.findings[k]) for k in FINDING_ORDER if k in self.findings}
        for fld in ("normal_fraction", "prior_fraction", "ap_fraction", "ng_malposition_rate",
                    "uncertainty_rate"):
            v = getattr(self, fld)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{fld} must be in [0, 1], got {v}")
        if len(self.lesion_size_mm) != 2:
            raise ValueError("lesion_size_mm must be (min_mm, max_mm), e.g. (8, 50)")
        lo, hi = self.lesion_size_mm
        if not MIN_LESION_MM <= lo <= hi <= MAX_LESION_MM:
            raise ValueError(
                f"impossible lesion size range {self.lesion_size_mm} mm: need "
                f"{MIN_LESION_MM} <= min <= max <= {MAX_LESION_MM} (a chest is ~300 mm wide)"
            )
        if not self.findings and self.normal_fraction < 1.0:
            raise ValueError(
                "no findings selected: pass --findings NAME[,NAME] or normal_fraction=1"
            )
