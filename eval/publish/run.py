"""``publish``: stage a release folder (exactly what is uploaded), check it, upload it."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

from radinterp.config import BaseConfig
from radinterp.errors import InputError
from eval.publish.card import model_card
from eval.publish.layout import PUBLISH_LAYOUTS, check_loads_back, check_repo_id, gather, write_entry
from eval.publish.upload import STATE_FILE, PlannedCall, execute, hub_api, plan_upload

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PublishConfig(BaseConfig):
    """What to publish where."""

    saes: list[str]
    """SAE folders (either layout); each one's folder name is its SAE id in the repo."""
    repo_id: str
    """Hub repo ``ORG/NAME``."""
    layout: str = "sae_lens"
    """``sae_lens`` (cfg.json + sae_weights.safetensors) or ``dictionary_learning`` (ae.pt + config.json)."""
    evals: list[str] = dataclasses.field(default_factory=list)
    """radinterp eval output folders, one per SAE; empty: ``SAE/eval``."""
    autointerp: list[str] = dataclasses.field(default_factory=list)
    """autointerp output folders (explanations.jsonl), one per SAE; empty: ``SAE/autointerp`` if present."""
    license: str = "mit"
    """Licence of the weights (the card's metadata)."""
    data_note: str = ("activations of the studies named in the eval's store; check that data's "
                      "licence before publishing")
    """The data the SAE was trained on and its licence, for the card."""
    include_labels: bool = True
    """Publish the autointerp explanations (they can quote report phrases: review them first)."""
    private: bool = True
    """Create the repo private."""
    endpoint: str | None = None
    """Hub endpoint (default: huggingface.co)."""

    def __post_init__(self) -> None:
        check_repo_id(self.repo_id)
        if not self.saes:
            raise InputError("no SAE to publish", "pass --sae FOLDER[,FOLDER...]")
        if self.layout not in PUBLISH_LAYOUTS:
            raise InputError(f"unknown layout {self.layout!r}", f"use one of: {', '.join(PUBLISH_LAYOUTS)}")


def stage_release(cfg: PublishConfig, stage: str | Path) -> list[str]:
    """Write the release into ``stage`` (replacing an earlier staging, keeping the upload
    state) and check every SAE folder loads back; returns the SAE ids."""
    stage = Path(stage)
    entries = gather([Path(p) for p in cfg.saes], [Path(p) for p in cfg.evals] or None,
                     [Path(p) for p in cfg.autointerp] or None)
    if not cfg.include_labels:
        entries = [dataclasses.replace(e, explanations=[]) for e in entries]
    if stage.exists() and any(stage.iterdir()) and not (stage / STATE_FILE).is_file():
        raise InputError(f"staging folder {stage} is not empty and was not written by publish",
                         "pass an empty or new folder")
    stage.mkdir(parents=True, exist_ok=True)
    if not (stage / STATE_FILE).is_file():
        (stage / STATE_FILE).write_text('{"done": []}')  # marks the folder as ours; not uploaded
    for child in stage.iterdir():
        if child.name != STATE_FILE:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    for e in entries:
        folder = write_entry(e, stage, cfg.layout)
        check_loads_back(e.path, folder, cfg.layout)
    card = model_card(entries, cfg.repo_id, cfg.layout, license=cfg.license, data_note=cfg.data_note)
    (stage / "README.md").write_text(card)
    return [e.sae_id for e in entries]


def publish(cfg: PublishConfig, stage: str | Path, *, dry_run: bool = False, api=None
            ) -> list[PlannedCall]:
    """Stage, check, and (unless ``dry_run``) upload; returns the planned calls."""
    ids = stage_release(cfg, stage)
    plan = plan_upload(Path(stage), cfg.repo_id, ids, private=cfg.private)
    if dry_run:
        log.info("dry run: %s holds what would be uploaded to %s", stage, cfg.repo_id)
        return plan
    execute(plan, api if api is not None else hub_api(cfg.endpoint), Path(stage))
    return plan


__all__ = ["PublishConfig", "publish", "stage_release"]
