"""Registry, config base and the CLI's subcommand discovery."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from radinterp.config import BaseConfig
from radinterp.registry import Registry


def test_registry_refuses_duplicates_and_lists_names():
    reg: Registry[int] = Registry("widget")
    reg.add("a", 1)
    reg.register("b")(2)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", 3)
    with pytest.raises(KeyError, match="valid names: a, b"):
        reg.get("c")
    assert reg.names() == ["a", "b"] and "a" in reg and len(reg) == 2


@dataclasses.dataclass
class _Cfg(BaseConfig):
    lr: float = 1e-3
    """learning rate"""
    api_key: str | None = None
    """never saved"""


def test_config_roundtrip_drops_secrets(tmp_path):
    cfg = _Cfg(lr=0.5, api_key="sk-secret")
    cfg.save(tmp_path / "cfg.json")
    text = (tmp_path / "cfg.json").read_text()
    assert "sk-secret" not in text and json.loads(text) == {"lr": 0.5}
    assert _Cfg.load(tmp_path / "cfg.json").lr == 0.5
    with pytest.raises(ValueError, match="unknown fields"):
        _Cfg.from_dict({"lr": 1, "momentum": 0.9})


def test_help_lists_exactly_the_registered_subcommands():
    out = subprocess.run([sys.executable, "-m", "radinterp.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    registered = {ep.name for ep in entry_points(group="radinterp.commands")}
    listed = set()
    for line in out.stdout.splitlines():
        parts = line.strip("│ ").split()
        if parts and parts[0] in registered | {"phantoms", "label", "capture", "train", "autointerp",
                                               "steer", "bridge", "eval", "eval-reports", "publish", "demo"}:
            listed.add(parts[0])
    assert listed == registered
    for name in registered:  # every listed subcommand really runs
        sub = subprocess.run([sys.executable, "-m", "radinterp.cli", name, "--help"], capture_output=True, text=True)
        assert sub.returncode == 0, (name, sub.stderr)


def test_resolve_device_names_auto_and_refusals(monkeypatch):
    import torch

    from radinterp.devices import module_device, resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert module_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu0")
    if torch.cuda.is_available():
        monkeypatch.setenv("LOCAL_RANK", "0")
        assert resolve_device("auto") == torch.device("cuda", 0)
    else:
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="no CUDA GPU here"):
            resolve_device("cuda:1")
