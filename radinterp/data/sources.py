"""Data sources: every way studies reach the toolkit, behind one interface.

``SOURCES`` maps a kind to a ``StudySource`` class; ``open_studies(path)`` picks the kind
from what the path holds:

- ``phantoms``: a phantom folder with ``studies.jsonl`` (``radinterp.data.phantoms``'s format).
- ``image_folder``: a folder with ``metadata.jsonl`` (one row per image, as in
  ``real-cxr``: image_file, report_text, labels "A|B", view, study_id, mask_file, ...).
- ``mimic_jsonl``: a ``.jsonl`` file, one MIMIC-CXR-style study per line (layout below).

MIMIC-style JSONL layout (one object per line; image paths relative to the file's folder or
absolute; only ``study_id`` and ``frontal`` are required)::

    {"study_id": "s5000001", "frontal": "files/p10/.../frontal.jpg",
     "lateral": "files/.../lateral.jpg", "prior_frontal": null, "prior_report": null,
     "indication": "Cough.", "technique": "PA and lateral.", "comparison": "None.",
     "report": "The lungs are clear...", "labels": {"Cardiomegaly": 1, "Edema": -1},
     "masks": {}, "meta": {"subject_id": "10000032"}}

``labels`` may also be a "A|B" string (each listed finding positive); unknown keys go to meta.

Image paths in every kind may name any image PIL reads (PNG, JPEG, 16-bit PNG, ...) or a DICOM
file (``.dcm`` or a DICOM preamble; read by :mod:`radinterp.models.dicom`).
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image

from radinterp.data.study import Study
from radinterp.models.image import load_image
from radinterp.registry import Registry

log = logging.getLogger(__name__)

SOURCES: Registry[type[StudySource]] = Registry("data source")

IMAGE_FIELDS = ("frontal", "lateral", "prior_frontal")
TEXT_FIELDS = ("prior_report", "indication", "technique", "comparison", "report")
LATERAL_VIEWS = {"LATERAL", "LL", "LAT", "RL"}


class SourceError(ValueError):
    """A data source that cannot be read; the message names the file (and line) and the fix."""


class StudySource(ABC):
    """Yields ``Study`` records from one path."""

    kind: ClassVar[str] = ""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise SourceError(f"data path {self.path} does not exist; pass a folder or .jsonl file")

    @classmethod
    @abstractmethod
    def detect(cls, path: Path) -> bool:
        """True when ``path`` looks like this kind of source."""

    @abstractmethod
    def __iter__(self) -> Iterator[Study]:
        """Studies in a fixed, deterministic order."""


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-empty line, with errors naming file:line."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SourceError(f"{path}:{lineno}: invalid JSON ({exc.msg}); fix the line") from None
            if not isinstance(row, dict):
                raise SourceError(f"{path}:{lineno}: expected a JSON object per line")
            yield lineno, row


def parse_labels(value: Any, where: str) -> dict[str, int]:
    """Labels as {"obs": 1/0/-1} or "A|B" (each positive); blanks (None) are dropped."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        return {name.strip(): 1 for name in value.split("|") if name.strip()}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if v is None or v == "":
                continue
            if v not in (1, 0, -1):
                raise SourceError(f"{where}: label {k!r} is {v!r}; use 1, 0, -1 or null")
            out[str(k)] = int(v)
        return out
    raise SourceError(f"{where}: labels must be an object or an 'A|B' string, got {type(value).__name__}")


def _resolve(root: Path, value: Any) -> str | None:
    if value in (None, ""):
        return None
    p = Path(str(value))
    return str(p if p.is_absolute() else root / p)


def study_from_row(row: dict[str, Any], root: Path, where: str) -> Study:
    """A ``Study`` from a Study-shaped row (phantoms, MIMIC-style JSONL)."""
    sid = row.get("study_id")
    if sid in (None, ""):
        raise SourceError(f"{where}: row has no study_id; every study needs a unique id")
    known = {"study_id", "labels", "masks", "meta", *IMAGE_FIELDS, *TEXT_FIELDS}
    meta = dict(row.get("meta") or {})
    meta.update({k: v for k, v in row.items() if k not in known})
    masks = {str(k): _resolve(root, v) for k, v in (row.get("masks") or {}).items() if v}
    return Study(
        study_id=str(sid),
        **{f: _resolve(root, row.get(f)) for f in IMAGE_FIELDS},
        **{f: (row.get(f) or None) for f in TEXT_FIELDS},
        labels=parse_labels(row.get("labels"), where),
        masks=masks,  # type: ignore[arg-type]
        meta=meta,
    )


@SOURCES.register("mimic_jsonl")
class MimicJsonlSource(StudySource):
    """A ``.jsonl`` file of MIMIC-CXR-style studies (layout in this module's docstring)."""

    kind = "mimic_jsonl"

    @classmethod
    def detect(cls, path: Path) -> bool:
        return path.is_file() and path.suffix == ".jsonl"

    def __iter__(self) -> Iterator[Study]:
        for lineno, row in read_jsonl(self.path):
            yield study_from_row(row, self.path.parent, f"{self.path}:{lineno}")


@SOURCES.register("phantoms")
class PhantomSource(StudySource):
    """A phantom folder (``studies.jsonl`` + rendered images)."""

    kind = "phantoms"

    @classmethod
    def detect(cls, path: Path) -> bool:
        return path.is_dir() and (path / "studies.jsonl").is_file()

    def __iter__(self) -> Iterator[Study]:
        from radinterp.data.phantoms import load_phantom_studies

        yield from load_phantom_studies(self.path)


_IMAGE_FOLDER_META_SKIP = {"image_file", "report_text", "labels", "study_id", "mask_file"}


@SOURCES.register("image_folder")
class ImageFolderSource(StudySource):
    """A folder of images + ``metadata.jsonl`` (one row per image; rows sharing a study_id
    become one study, lateral views going to the lateral slot)."""

    kind = "image_folder"
    mask_name: ClassVar[str] = "lung"
    """Name given to ``mask_file`` masks (real-cxr's masks are lung masks)."""

    @classmethod
    def detect(cls, path: Path) -> bool:
        return path.is_dir() and (path / "metadata.jsonl").is_file()

    def __iter__(self) -> Iterator[Study]:
        meta_path = self.path / "metadata.jsonl"
        studies: dict[str, Study] = {}
        for lineno, row in read_jsonl(meta_path):
            where = f"{meta_path}:{lineno}"
            image = _resolve(self.path, row.get("image_file"))
            if image is None:
                raise SourceError(f"{where}: row has no image_file")
            sid = str(row.get("study_id") or Path(image).stem)
            slot = "lateral" if str(row.get("view", "")).upper() in LATERAL_VIEWS else "frontal"
            study = studies.get(sid)
            if study is None:
                meta = {k: _maybe_json(v) for k, v in row.items() if k not in _IMAGE_FOLDER_META_SKIP}
                study = studies[sid] = Study(
                    study_id=sid, report=row.get("report_text") or None,
                    labels=parse_labels(row.get("labels"), where), meta=meta,
                )
            if getattr(study, slot) is not None:
                raise SourceError(f"{where}: study {sid!r} has two {slot} images; give each "
                                  "image row its own study_id or fix the view column")
            setattr(study, slot, image)
            mask = _resolve(self.path, row.get("mask_file"))
            if mask and slot == "frontal":
                study.masks[self.mask_name] = mask
        yield from studies.values()


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def detect_source(path: str | Path) -> str:
    """The source kind that matches ``path``; errors list the kinds when none or several match."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"data path {p} does not exist; pass a folder or .jsonl file")
    hits = [name for name in SOURCES.names() if SOURCES.get(name).detect(p)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise SourceError(
            f"cannot tell what kind of data {p} holds: expected a folder with studies.jsonl "
            "(phantoms) or metadata.jsonl (image_folder), or a .jsonl file (mimic_jsonl); "
            f"pass the kind explicitly (one of {', '.join(SOURCES.names())})"
        )
    raise SourceError(f"{p} matches several data kinds {hits}; pass the kind explicitly")


def open_studies(path: str | Path, kind: str | None = None) -> Iterator[Study]:
    """Iterate the studies at ``path``; ``kind`` (a ``SOURCES`` name) overrides auto-detection."""
    kind = kind or detect_source(path)
    return iter(SOURCES.get(kind)(path))


def image_problem(study: Study) -> str | None:
    """Why the study's images cannot be used (naming the file), or None when they load."""
    for f in IMAGE_FIELDS:
        value = getattr(study, f)
        if value is None or isinstance(value, Image.Image):
            continue
        path = Path(value)
        if not path.is_file():
            return f"missing {f} image file {path}"
        try:
            load_image(path)  # PIL formats and DICOM alike
        except (OSError, SyntaxError, ValueError) as exc:
            return f"corrupt {f} image file {path} ({type(exc).__name__}: {exc})"
    if study.frontal is None:
        return "no frontal image (MAIRA-2-style models need a current frontal image)"
    return None
