"""A method run's output folder, written atomically so a crash never leaves half a file.

Layout of ``OUT``::

    cfg.json                  resolved run config + the method's options
    features/part-*.safetensors   cached patch features (csr, insight), see patch_features
    model.safetensors         the fitted method (tensors; small metadata in the header)
    maps/<study>.safetensors  per test study: maps on the patch grid (one tensor per name)
    metrics.json              the results; written last, so it marks the run complete

A rerun with the same config returns the stored metrics; an interrupted one keeps its cached
features and finished maps. A folder holding another run's config is refused unless
``overwrite``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from radinterp.config import write_json_atomic

CFG, MODEL, METRICS, MAPS, FEATURES = "cfg.json", "model.safetensors", "metrics.json", "maps", "features"
_ARTIFACTS = (CFG, MODEL, METRICS, MAPS, FEATURES)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def save_safetensors_atomic(path: Path, tensors: dict[str, torch.Tensor],
                            metadata: dict[str, Any] | None = None) -> Path:
    """Write ``tensors`` (contiguous CPU copies) to ``path`` via temp file + fsync + rename;
    ``metadata`` goes JSON-encoded into the header under ``radinterp``."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp,
                  metadata={"radinterp": json.dumps(metadata or {}, sort_keys=True)})
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata) of a file written by :func:`save_safetensors_atomic`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("radinterp", "{}"))
        return {k: f.get_tensor(k) for k in f.keys()}, meta


def map_name(study_id: str) -> str:
    """File stem for a study's maps: the id with unsafe characters replaced, plus a short hash
    when anything was replaced (so two ids never share a file)."""
    safe = _UNSAFE.sub("_", study_id)
    if safe != study_id:
        import hashlib

        safe += "-" + hashlib.sha256(study_id.encode()).hexdigest()[:8]
    return safe


class MethodOutput:
    """The output folder of one method run."""

    def __init__(self, out: str | os.PathLike) -> None:
        self.root = Path(out)

    # ------------------------------------------------------------------ lifecycle
    def prepare(self, cfg: dict[str, Any], overwrite: bool = False) -> bool:
        """Check the folder against ``cfg``; True when the run is already complete.

        Writes ``cfg.json`` for a new run; keeps a matching interrupted run's files (resume);
        refuses a folder holding another run unless ``overwrite`` (which deletes its artifacts).
        """
        have = self.read_cfg()
        if have is not None and have != json.loads(json.dumps(cfg, sort_keys=True)):
            if not overwrite:
                diff = sorted(k for k in set(cfg) | set(have) if cfg.get(k) != have.get(k))
                raise FileExistsError(f"{self.root} holds another method run (config differs in "
                                      f"{diff}); pass --overwrite or choose another --out")
            self.clear()
        elif have is None and self.root.exists() and any(self.root.iterdir()) and not overwrite:
            raise FileExistsError(f"{self.root} is not empty and holds no method run; "
                                  "choose another --out or pass --overwrite")
        elif overwrite:
            self.clear()
        if self.complete() and not overwrite:
            return True
        write_json_atomic(self.root / CFG, cfg)
        return False

    def clear(self) -> None:
        """Delete this run's artifacts (nothing else in the folder)."""
        for name in _ARTIFACTS:
            p = self.root / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    def read_cfg(self) -> dict[str, Any] | None:
        p = self.root / CFG
        return json.loads(p.read_text()) if p.exists() else None

    def complete(self) -> bool:
        return (self.root / METRICS).exists()

    # ------------------------------------------------------------------ artifacts
    @property
    def features_dir(self) -> Path:
        return self.root / FEATURES

    def save_model(self, tensors: dict[str, torch.Tensor], metadata: dict[str, Any] | None = None) -> Path:
        return save_safetensors_atomic(self.root / MODEL, tensors, metadata)

    def load_model(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return load_safetensors(self.root / MODEL)

    def has_model(self) -> bool:
        return (self.root / MODEL).exists()

    def map_path(self, study_id: str) -> Path:
        return self.root / MAPS / f"{map_name(study_id)}.safetensors"

    def has_map(self, study_id: str) -> bool:
        return self.map_path(study_id).exists()

    def save_map(self, study_id: str, maps: dict[str, torch.Tensor],
                 metadata: dict[str, Any] | None = None) -> Path:
        """Maps of one test study, each (..., gh, gw) on the patch grid."""
        return save_safetensors_atomic(self.map_path(study_id), maps,
                                       {"study_id": study_id, **(metadata or {})})

    def load_map(self, study_id: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return load_safetensors(self.map_path(study_id))

    def save_metrics(self, metrics: dict[str, Any]) -> Path:
        """Write ``metrics.json`` (last: it marks the run complete)."""
        write_json_atomic(self.root / METRICS, metrics)
        return self.root / METRICS

    def load_metrics(self) -> dict[str, Any]:
        return json.loads((self.root / METRICS).read_text())


__all__ = ["MethodOutput", "load_safetensors", "map_name", "save_safetensors_atomic"]
