"""Prompt templates (package data): ``load_prompt(name)`` reads ``autointerp/prompts/NAME.txt``.

Templates use ``str.format`` fields; ``load_prompt(name, prompt_dir)`` prefers an edited copy
``prompt_dir/NAME.txt`` when one is there."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path


@lru_cache(maxsize=None)
def _packaged(name: str) -> str:
    return resources.files(__package__).joinpath(f"{name}.txt").read_text(encoding="utf-8")


def load_prompt(name: str, prompt_dir: str | Path | None = None) -> str:
    """The template ``NAME.txt`` from ``prompt_dir`` when given and present there, else the
    packaged one; raises naming the valid names when neither exists."""
    if prompt_dir is not None and (p := Path(prompt_dir) / f"{name}.txt").exists():
        return p.read_text(encoding="utf-8")
    try:
        return _packaged(name)
    except FileNotFoundError:
        names = sorted(p.name[:-4] for p in resources.files(__package__).iterdir()
                       if p.name.endswith(".txt"))
        raise FileNotFoundError(f"no prompt {name!r}; valid prompt names: {', '.join(names)}"
                                ) from None


__all__ = ["load_prompt"]
