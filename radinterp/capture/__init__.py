"""Capture activations at canonical sites into an activation store (``radinterp capture``)."""

from radinterp.capture.config import CaptureConfig
from radinterp.capture.runner import CaptureResult, run_capture

__all__ = ["CaptureConfig", "CaptureResult", "run_capture"]
