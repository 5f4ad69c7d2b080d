"""Bridges: SAE features vs the reference methods (CSR, INSIGHT, radiomic fingerprints),
planted findings, labeler labels and ground-truth masks (``radinterp bridge``)."""

from eval.bridges.config import BridgeConfig
from eval.bridges.run import run_bridge

__all__ = ["BridgeConfig", "run_bridge"]
