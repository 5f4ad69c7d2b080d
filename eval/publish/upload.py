"""Uploading a staged release folder to the Hugging Face Hub, resumably.

The upload is a plan of :class:`PlannedCall` s (HfApi method + keyword arguments), built by
:func:`plan_upload` and run by :func:`execute`, so what would be sent can be inspected (and is
tested) without reaching the Hub. One commit per SAE folder, then one for the model card;
each finished commit is recorded in ``STAGE/.upload_state.json`` and skipped by a rerun
(the Hub also skips large files it already holds). The token comes from the environment only
(``HF_TOKEN``, or ``HUGGING_FACE_HUB_TOKEN``) and is never written anywhere.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

from radinterp.config import write_json_atomic
from radinterp.errors import InputError

log = logging.getLogger(__name__)

STATE_FILE = ".upload_state.json"
TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


@dataclasses.dataclass(frozen=True)
class PlannedCall:
    """One HfApi call."""

    key: str
    """Name recorded in the state file once the call succeeded."""
    method: str
    """HfApi method name."""
    kwargs: dict[str, Any]
    """Its keyword arguments (no token: the HfApi object carries it)."""


def plan_upload(stage: Path, repo_id: str, sae_ids: list[str], *, private: bool = True,
                revision: str | None = None) -> list[PlannedCall]:
    """create_repo, one upload_folder per SAE folder, then README.md."""
    stage = Path(stage)
    calls = [PlannedCall("create_repo", "create_repo",
                         {"repo_id": repo_id, "repo_type": "model", "private": private, "exist_ok": True})]
    for sae_id in sae_ids:
        calls.append(PlannedCall(f"sae:{sae_id}", "upload_folder", {
            "repo_id": repo_id, "repo_type": "model", "revision": revision,
            "folder_path": str(stage / sae_id), "path_in_repo": sae_id,
            "commit_message": f"Add SAE {sae_id} (radinterp publish)"}))
    calls.append(PlannedCall("card", "upload_file", {
        "repo_id": repo_id, "repo_type": "model", "revision": revision,
        "path_or_fileobj": str(stage / "README.md"), "path_in_repo": "README.md",
        "commit_message": "Model card (radinterp publish)"}))
    return calls


def token_from_env() -> str:
    for var in TOKEN_VARS:
        if os.environ.get(var):
            return os.environ[var]
    raise InputError("no Hugging Face token in the environment",
                     "export HF_TOKEN=hf_... (a write token; it is read from the environment only)")


def hub_api(endpoint: str | None = None):
    """An HfApi with the environment's token (``endpoint``: another Hub, e.g. a mirror)."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint, token=token_from_env())


def _state(stage: Path) -> dict[str, Any]:
    path = stage / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {"done": []}


def execute(plan: list[PlannedCall], api, stage: Path) -> list[str]:
    """Run the calls not yet recorded as done in ``stage``; returns the keys run now."""
    state = _state(stage)
    ran = []
    for call in plan:
        if call.key in state["done"] and call.key != "create_repo":
            log.info("already uploaded: %s", call.key)
            continue
        getattr(api, call.method)(**call.kwargs)
        if call.key not in state["done"]:
            state["done"].append(call.key)
        write_json_atomic(stage / STATE_FILE, state)
        ran.append(call.key)
    return ran


__all__ = ["PlannedCall", "STATE_FILE", "execute", "hub_api", "plan_upload", "token_from_env"]
