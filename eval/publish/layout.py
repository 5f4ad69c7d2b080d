"""What ``radinterp publish`` uploads: one folder per SAE id, in SAELens's or MAIRA-2's layout.

SAELens layout (what ``upload_saes_to_huggingface`` writes)::

    README.md                      model card (eval.publish.card)
    SAE_ID/cfg.json                sae-lens config (architecture jumprelu)
    SAE_ID/sae_weights.safetensors
    SAE_ID/metrics.json            the eval's metrics (radinterp eval)
    SAE_ID/explanations.jsonl      autointerp labels, when present

``SAE.from_pretrained(repo_id, sae_id)`` of a repo that is not in SAELens's release directory
reads ``SAE_ID/cfg.json`` and ``SAE_ID/sae_weights.safetensors`` of ``repo_id``
(``get_repo_id_and_folder_name`` returns ``(repo_id, sae_id)``), so the folder names are the
SAE ids. The ``dictionary_learning`` layout writes ``SAE_ID/ae.pt`` + ``SAE_ID/config.json``
instead (MAIRA-2's release: one trainer folder per SAE).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from radinterp.errors import InputError
from radinterp.sae import load_sae, save_sae

PUBLISH_LAYOUTS = ("sae_lens", "dictionary_learning")
EVAL_DIR = "eval"
AUTOINTERP_DIR = "autointerp"
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_SAE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_repo_id(repo_id: str) -> str:
    """``ORG/NAME`` with Hub-legal characters, or an InputError naming the form."""
    if not _REPO_ID.match(repo_id or "") or ".." in repo_id or repo_id.endswith((".git", ".")):
        raise InputError(f"repo id {repo_id!r} is not ORG/NAME",
                         "pass --repo-id like my-org/maira2-sae (letters, digits, '-', '_', '.')")
    return repo_id


@dataclasses.dataclass
class SaeEntry:
    """One SAE to publish and what goes with it."""

    sae_id: str
    """Folder name in the repo (the SAELens ``sae_id``)."""
    path: Path
    """The SAE folder it is read from (either layout)."""
    metrics: dict[str, Any]
    """The eval's metrics.json."""
    explanations: list[dict[str, Any]]
    """Autointerp rows (latent, explainer, explanation); empty when none."""
    train_cfg: dict[str, Any] | None
    """train_cfg.json of the run that trained it, when present."""


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    from radinterp.data.sources import read_jsonl

    return [row for _, row in read_jsonl(path)]


def gather(sae_dirs: list[Path], eval_dirs: list[Path] | None, autointerp_dirs: list[Path] | None
           ) -> list[SaeEntry]:
    """Each SAE with its eval metrics (required) and autointerp labels (optional)."""
    if eval_dirs and len(eval_dirs) != len(sae_dirs):
        raise InputError(f"{len(sae_dirs)} SAEs but {len(eval_dirs)} eval folders",
                         "pass one --eval folder per --sae, in the same order")
    entries, ids = [], set()
    for i, sae_dir in enumerate(sae_dirs):
        sae_dir = Path(sae_dir)
        sae = load_sae(sae_dir)  # raises for a folder in neither layout
        sae_id = sae_dir.resolve().name
        if not _SAE_ID.match(sae_id) or sae_id in ids:
            raise InputError(f"SAE id {sae_id!r} (the folder name) is not unique or not a plain name",
                             "rename the SAE folders so each has a distinct plain name")
        ids.add(sae_id)
        ev = Path(eval_dirs[i]) if eval_dirs else sae_dir / EVAL_DIR
        metrics_path = ev / "metrics.json"
        if not metrics_path.is_file():
            raise InputError(f"no eval metrics for {sae_dir} ({metrics_path} is missing)",
                             f"run radinterp eval --sae {sae_dir} --acts ACTS --out {sae_dir / EVAL_DIR}, "
                             "or pass --eval DIR")
        metrics = json.loads(metrics_path.read_text())
        if (metrics.get("d_in"), metrics.get("d_sae")) != (sae.d_in, sae.d_sae):
            raise InputError(f"{metrics_path} is of a d_in={metrics.get('d_in')} d_sae="
                             f"{metrics.get('d_sae')} SAE, not {sae_dir}",
                             "pass --eval the folder radinterp eval wrote for this SAE")
        ai = Path(autointerp_dirs[i]) if autointerp_dirs else sae_dir / AUTOINTERP_DIR
        expl = _read_jsonl(ai / "explanations.jsonl") if (ai / "explanations.jsonl").is_file() else []
        tc = sae_dir / "train_cfg.json"
        entries.append(SaeEntry(sae_id, sae_dir, metrics, expl,
                                json.loads(tc.read_text()) if tc.is_file() else None))
    return entries


def write_entry(entry: SaeEntry, root: Path, layout: str) -> Path:
    """Write one SAE's folder under ``root`` in ``layout``; returns it."""
    if layout not in PUBLISH_LAYOUTS:
        raise InputError(f"unknown layout {layout!r}", f"use one of: {', '.join(PUBLISH_LAYOUTS)}")
    folder = root / entry.sae_id
    if folder.exists():
        shutil.rmtree(folder)
    save_sae(load_sae(entry.path), folder, layout=layout)
    (folder / "metrics.json").write_text(json.dumps(entry.metrics, indent=1))
    if entry.explanations:
        with open(folder / "explanations.jsonl", "w") as f:
            for row in entry.explanations:
                f.write(json.dumps(row) + "\n")
    return folder


@torch.no_grad()
def check_loads_back(source: Path, folder: Path, layout: str, n: int = 64) -> None:
    """Refuse when ``folder`` does not load back (radinterp, and sae_lens for its layout) with
    the same encode / decode as ``source``."""
    ours = load_sae(source)
    x = torch.randn(n, ours.d_in, generator=torch.Generator().manual_seed(0)) * ours.W_dec.norm(dim=1).mean()
    x = x + ours.b_dec
    want_z, want_x = ours.encode(x), ours.forward(x)
    loaders = {"radinterp": lambda: load_sae(folder, layout=layout)}
    if layout == "sae_lens":
        import sae_lens

        loaders["sae_lens"] = lambda: sae_lens.SAE.load_from_disk(str(folder))
    for name, load in loaders.items():
        try:
            back = load()
            z = back.encode(x)
            ok = torch.allclose(z, want_z, atol=1e-5) and torch.allclose(back.decode(z), want_x, atol=1e-4)
        except Exception as exc:  # a folder that does not load is what we refuse
            raise InputError(f"{folder} does not load back with {name}: {exc}",
                             "check the SAE folder; nothing was uploaded") from exc
        if not ok:
            raise InputError(f"{folder} loads with {name} but encodes differently from {source}",
                             "check the SAE folder; nothing was uploaded")


__all__ = ["PUBLISH_LAYOUTS", "SaeEntry", "check_loads_back", "check_repo_id", "gather", "write_entry"]
