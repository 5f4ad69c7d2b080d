"""Steering: edit generated reports with SAE features and baselines, and measure what it did.

``steer(adapter, method, ...)`` is a context manager around any generation; ``METHODS`` the
registry (add, clamp, ablate, diffmean, diffmean_matched, prompt); ``run_steering`` the
evaluation behind ``radinterp steer``. Imports only the core.
"""

from steering.directions import Direction, LabelTable, SiteStats, diffmean_direction, feature_direction, random_direction
from steering.methods import METHODS, NonFiniteResidual, Resources, Steering, SteerSpec, build
from steering.steer import apply, steer

__all__ = [
    "METHODS", "Direction", "LabelTable", "NonFiniteResidual", "Resources", "SiteStats", "SteerSpec",
    "Steering", "apply", "build", "diffmean_direction", "feature_direction", "random_direction", "steer",
]
