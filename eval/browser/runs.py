"""The stage folders the browser reads, opened and checked against each other.

Each folder is another stage's finished output: ``radinterp autointerp`` (explanations.jsonl,
scores.jsonl, examples.jsonl, heatmaps/), ``radinterp steer`` (steering.json,
generations.jsonl), ``radinterp bridge`` (bridge.json, png/) and ``radinterp eval``
(metrics.json). Feature ids only mean something for one SAE, so every run must name the
autointerp run's SAE: the same folder, or weight files with the same bytes (sha256). A run
whose SAE folder no longer exists on this machine cannot be checked and is accepted with a
warning.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from radinterp.errors import InputError

log = logging.getLogger(__name__)

WEIGHT_FILES = ("sae_weights.safetensors", "ae.pt")
"""The SAE layouts' weight files (sae-lens, dictionary_learning), compared by sha256."""


def _read(folder: str, name: str, flag: str, stage: str) -> dict:
    path = Path(folder) / name
    if not Path(folder).is_dir():
        raise InputError(f"{flag} {folder} does not exist", f"pass the --out folder of a {stage} run")
    if not path.is_file():
        raise InputError(f"{flag} {folder} holds no {name} (not a finished {stage} run)",
                         f"pass the --out folder of a finished {stage} run")
    return json.loads(path.read_text())


def _weights_digest(sae: Path) -> str | None:
    from radinterp.store.format import sha256_file

    files = [sae / n for n in WEIGHT_FILES if (sae / n).is_file()]
    return "".join(sha256_file(f) for f in files) or None


def check_same_sae(reference: str | None, other: str | None, what: str) -> None:
    """Raise :class:`InputError` when ``other`` (the SAE folder the ``what``, e.g. "bridge run",
    ran on) is not the SAE ``reference`` (the autointerp run's)."""
    if not reference or not other:
        log.warning("the %s records no SAE; feature ids are not checked against autointerp's", what)
        return
    a, b = Path(reference), Path(other)
    if a.resolve() == b.resolve():
        return
    da, db = (_weights_digest(p) if p.is_dir() else None for p in (a, b))
    if da is None or db is None:
        log.warning("the %s ran on SAE %s, autointerp on %s; one is not on this machine, so the "
                    "feature ids are not checked", what, b, a)
        return
    if da != db:
        raise InputError(f"the {what} ran on SAE {b} but the autointerp run on {a} (other weights), "
                         "so its feature ids name other features",
                         f"pass a {what} of the SAE {a}, or an autointerp run of {b}")


@dataclass
class Runs:
    """The browser's inputs, read once."""

    autointerp: Path
    """The autointerp folder."""
    sae: str | None
    """The SAE the autointerp run explained."""
    steering: dict | None = None
    """steering.json (None: no steering run given)."""
    steering_dir: Path | None = None
    generations: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    """(split, arm key) -> generation records of generations.jsonl."""
    bridge: dict | None = None
    """bridge.json (None: no bridge run given)."""
    bridge_dir: Path | None = None
    metrics: dict | None = None
    """The SAE eval's metrics.json (None: none given)."""
    eval_dir: Path | None = None


def read_generations(path: Path) -> dict[tuple[str, str], list[dict]]:
    """(split, arm) -> records, in file order (a torn last line is dropped)."""
    from steering.evaluate import read_records

    out: dict[tuple[str, str], list[dict]] = {}
    for (split, arm, _), rec in read_records(path).items():
        out.setdefault((split, arm), []).append(rec)
    return out


def load_runs(autointerp: str, steering: str | None = None, bridge: str | None = None,
              sae_eval: str | None = None) -> Runs:
    """Open and check the folders (see the module docstring)."""
    ai_cfg = _read(autointerp, "cfg.json", "--autointerp", "radinterp autointerp")
    if not (Path(autointerp) / "explanations.jsonl").is_file():
        raise InputError(f"--autointerp {autointerp} holds no explanations.jsonl",
                         "pass the --out folder of a radinterp autointerp run")
    runs = Runs(Path(autointerp), ai_cfg.get("sae"))
    if steering:
        runs.steering = _read(steering, "steering.json", "--steering", "radinterp steer")
        check_same_sae(runs.sae, (runs.steering.get("cfg") or {}).get("sae"), "steering run")
        runs.steering_dir = Path(steering)
        runs.generations = read_generations(Path(steering) / "generations.jsonl")
    if bridge:
        runs.bridge = _read(bridge, "bridge.json", "--bridge", "radinterp bridge")
        check_same_sae(runs.sae, runs.bridge.get("sae"), "bridge run")
        runs.bridge_dir = Path(bridge)
    if sae_eval:
        runs.metrics = _read(sae_eval, "metrics.json", "--eval", "radinterp eval")
        runs.eval_dir = Path(sae_eval)
        check_same_sae(runs.sae, runs.metrics.get("sae"), "SAE eval")
    return runs


__all__ = ["Runs", "check_same_sae", "load_runs", "read_generations"]
