"""The ``radinterp`` command line.

The core defines the app; stage packages contribute subcommands through the
``radinterp.commands`` entry-point group (``name = "module:register"``), so the core never
imports a stage at import time and a stage that is not built has no subcommand.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from importlib.metadata import entry_points

import typer

from radinterp.errors import error_line, is_user_error

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


def with_errors(fn: Callable, name: str) -> Callable:
    """``fn`` reporting bad input as one line ``error: ... (fix: ...)`` and exit 2, no traceback.

    An error class may set ``exit_code`` to be told apart (``radinterp train``: 3 for
    non-finite activations). Anything that is not a user error keeps its traceback: a bug.
    """

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as err:
            if not is_user_error(err):
                raise
            typer.echo(error_line(err, f"check the options: {name} --help"), err=True)
            raise typer.Exit(getattr(err, "exit_code", 2)) from None

    return wrapped


def comma_list(text: str | None, cast: Callable[[str], object] = str) -> list:
    """The items of a comma-separated option, each stripped and cast, empty ones dropped ([] for
    None or ''); a cast's ``ValueError`` propagates for the caller to word."""
    return [cast(v.strip()) for v in (text or "").split(",") if v.strip()]


def add_command(target: typer.Typer, name: str, fn: Callable) -> None:
    """The one way a stage registers a subcommand: ``fn`` under ``name``, errors as one line."""
    target.command(name)(with_errors(fn, f"radinterp {name}"))


def run_standalone(fn: Callable) -> None:
    """``python -m PACKAGE`` entry points (torchrun, recipes): ``fn`` as a one-command app with
    the same error reporting as the ``radinterp`` subcommands."""
    spec = getattr(sys.modules.get(fn.__module__), "__spec__", None)
    prog = f"python -m {spec.name}" if spec else fn.__name__
    standalone = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    standalone.command()(with_errors(fn, prog))
    standalone()


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
