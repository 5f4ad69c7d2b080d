"""The stage runner: one folder per stage, a marker once it is complete, skipped stages with
their reason.

A stage is complete when its folder holds ``demo_stage.json`` (written atomically, last): the
stage's headline result and its seconds. A rerun reads the marker and computes nothing; a stage
that died half-way has no marker and is run again (every stage underneath resumes on its own:
capture's shards, the trainer's checkpoints, autointerp's and steering's line files).
"""

from __future__ import annotations

import json
import logging
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from radinterp.config import write_json_atomic
from eval.demo.config import DemoConfig

log = logging.getLogger(__name__)

MARKER = "demo_stage.json"
"""File that marks a stage folder complete (its result and seconds)."""


@dataclass
class Outcome:
    """What one stage did."""

    name: str
    """Stage name (``STAGE_NAMES``)."""
    status: str
    """``ran``, ``reused`` (complete before) or ``skipped``."""
    result: dict[str, Any] = field(default_factory=dict)
    """The stage's headline result (empty when skipped)."""
    seconds: float = 0.0
    """Wall seconds the stage took when it ran (reused: the seconds of the run that made it)."""
    cpu_seconds: float = 0.0
    """CPU seconds (this process's threads and its finished child processes) of the same run."""
    reason: str = ""
    """Why the stage was skipped."""


def cpu_seconds() -> float:
    """CPU seconds so far of this process and of its waited-for children (user + system)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Runner:
    """Runs stages in order under ``cfg.out``, reusing complete ones."""

    def __init__(self, cfg: DemoConfig, total: int) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.outcomes: dict[str, Outcome] = {}
        self._total = total
        self._bar = None
        if cfg.progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc="demo", unit="stage", position=0, leave=True)

    def _tick(self, name: str) -> None:
        n = len(self.outcomes)
        log.info("stage %d/%d: %s %s", n, self._total, name, self.outcomes[name].status)
        if self._bar is not None:
            self._bar.set_postfix_str(name)
            self._bar.update(1)

    def run(self, name: str, folder: str, fn: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """Run ``fn(stage_dir)`` unless ``stage_dir`` is complete; returns its result."""
        where = self.out / folder
        marker = where / MARKER
        if marker.is_file():
            rec = json.loads(marker.read_text())
            self.outcomes[name] = Outcome(name, "reused", rec["result"], rec.get("seconds", 0.0),
                                          rec.get("cpu_seconds", 0.0))
            self._tick(name)
            return rec["result"]
        log.info("stage %s -> %s", name, where)
        where.mkdir(parents=True, exist_ok=True)
        t0, c0 = time.perf_counter(), cpu_seconds()
        result = fn(where)
        seconds, cpu = round(time.perf_counter() - t0, 1), round(cpu_seconds() - c0, 1)
        write_json_atomic(marker, {"stage": name, "seconds": seconds, "cpu_seconds": cpu,
                                   "result": result})
        self.outcomes[name] = Outcome(name, "ran", result, seconds, cpu)
        self._tick(name)
        return result

    def skip(self, name: str, reason: str) -> None:
        """Record ``name`` as skipped for ``reason`` (logged and listed in the summary)."""
        log.info("skipping stage %s: %s", name, reason)
        self.outcomes[name] = Outcome(name, "skipped", reason=reason)
        self._tick(name)

    def result(self, name: str) -> dict[str, Any] | None:
        """The result of stage ``name`` (None when skipped or not run)."""
        o = self.outcomes.get(name)
        return None if o is None or o.status == "skipped" else o.result

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


__all__ = ["MARKER", "Outcome", "Runner", "cpu_seconds"]
