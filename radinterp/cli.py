"""The ``radinterp`` command line.

The core defines the app; stage packages contribute subcommands through the
``radinterp.commands`` entry-point group (``name = "module:register"``), so the core never
imports a stage at import time and a stage that is not built has no subcommand.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

import typer

app = typer.Typer(
    name="radinterp",
    help="Mechanistic interpretability for radiology multimodal LLMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_LOADED = False


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log warnings and errors only."),
) -> None:
    """Mechanistic interpretability for radiology multimodal LLMs."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def load_commands(target: typer.Typer = app) -> list[str]:
    """Register every subcommand declared in the ``radinterp.commands`` entry points."""
    global _LOADED
    names = []
    if _LOADED and target is app:
        return names
    for ep in sorted(entry_points(group="radinterp.commands"), key=lambda e: e.name):
        register = ep.load()
        register(target)
        names.append(ep.name)
    if target is app:
        _LOADED = True
    return names


def main() -> None:
    load_commands()
    app()


if __name__ == "__main__":
    main()
