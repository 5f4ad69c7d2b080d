"""Config base: typed dataclasses saved as ``cfg.json`` next to every artifact.

Subclasses put a docstring under every field and validate in ``__post_init__`` with
errors that name the fix. Fields whose name contains ``key``/``token``/``secret`` are never
written to disk.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C", bound="BaseConfig")

_SECRET_MARKERS = ("api_key", "secret", "password", "hf_token", "auth_token")


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


@dataclasses.dataclass
class BaseConfig:
    """Base class for every stage config."""

    def to_dict(self) -> dict[str, Any]:
        """Resolved config as plain JSON types, secrets removed."""
        out = _jsonable(self)
        return {k: v for k, v in out.items() if not any(m in k.lower() for m in _SECRET_MARKERS)}

    def save(self, path: str | os.PathLike) -> None:
        """Write ``cfg.json`` atomically (temp file + rename)."""
        write_json_atomic(Path(path), self.to_dict())

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"{cls.__name__} got unknown fields {unknown}; valid fields: {sorted(names)}"
            )
        return cls(**data)

    @classmethod
    def load(cls: type[C], path: str | os.PathLike) -> C:
        return cls.from_dict(json.loads(Path(path).read_text()))


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a crash leaves either the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; artifacts are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
