"""Every command reports bad input as one line ``error: ... (fix: ...)`` with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest
import typer
from typer.testing import CliRunner

from radinterp.cli import load_commands
from radinterp.errors import InputError, error_line, is_user_error


def _app() -> typer.Typer:
    app = typer.Typer()
    load_commands(app)
    return app


def _bad_args(tmp):
    """A bad input for every registered command (``command:case`` for more than one), and a word
    its message must contain."""
    missing = str(tmp / "missing")
    return {
        "phantoms": (["--out", str(tmp / "ph"), "--n", "2", "--findings", "unicorn"], "unicorn"),
        "capture": (["--model", "tiny", "--data", missing, "--site", "lm.blocks.0.resid_post",
                     "--out", str(tmp / "acts")], "does not exist"),
        "train": (["--acts", missing, "--out", str(tmp / "sae"), "--d-sae", "8", "--k", "4"], "missing"),
        "label": (["--data", missing, "--out", str(tmp / "lab")], "not found"),
        "eval-reports": (["--data", missing, "--out", str(tmp / "q")], "missing"),
        "next-sentence": (["--data", missing, "--study", "x"], "missing"),
        "demo": (["--out", str(tmp / "demo"), "--n-studies", "1"], "n_studies"),
        "demo:data": (["--out", str(tmp / "demo"), "--data", missing], "metadata.jsonl"),
        "demo:llm": (["--out", str(tmp / "demo"), "--quick", "--llm-features", "-1"], "llm_features"),
        "autointerp": (["--sae", missing, "--acts", missing, "--out", str(tmp / "ai")], "missing"),
        "eval": (["--sae", missing, "--acts", missing, "--out", str(tmp / "ev")], "does not exist"),
        "publish": (["--sae", missing, "--repo-id", "no-org", "--dry-run", str(tmp / "d")], "ORG/NAME"),
        "method": (["unicorn", "--data", missing, "--out", str(tmp / "m")], "unicorn"),
        "steer": (["--model", "demo", "--sae", missing, "--data", missing, "--out", str(tmp / "st"),
                   "--feature", "3"], "does not exist"),
        "bridge": (["--sae", missing, "--acts", missing, "--out", str(tmp / "b")], "does not exist"),
        "browse": (["--autointerp", missing, "--out", str(tmp / "br")], "does not exist"),
    }


def _one_error_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def test_every_registered_command_has_a_bad_input_case(tmp_path):
    registered = {ep.name for ep in entry_points(group="radinterp.commands")}
    cases = {key.split(":")[0] for key in _bad_args(tmp_path)}
    assert registered <= cases, registered - cases


@pytest.mark.parametrize("command", sorted(_bad_args(__import__("pathlib").Path("/unused"))))
def test_bad_input_is_one_error_line_with_a_fix(command, tmp_path):
    args, word = _bad_args(tmp_path)[command]
    command = command.split(":")[0]
    if command not in {ep.name for ep in entry_points(group="radinterp.commands")}:
        pytest.skip(f"{command} is not registered in this install")
    res = CliRunner().invoke(_app(), [command, *args])
    assert res.exit_code == 2, res.output
    line = _one_error_line(res.stderr)
    assert line.startswith("error: ") and "(fix: " in line and line.endswith(")"), line
    assert word in line, line
    assert res.exception is None or isinstance(res.exception, SystemExit)


@pytest.mark.parametrize("module,args", [
    ("radinterp.demo_model.train", ["--device", "no-such-device"]),
    ("sae_training", ["--d-sae", "8", "--k", "99"]),
])
def test_module_entry_points_report_errors_the_same_way(module, args, tmp_path):
    """``python -m`` entry points (the demo recipe, torchrun's trainer) print no traceback."""
    extra = ["--out", str(tmp_path / "run")] + (["--acts", str(tmp_path)] if module == "sae_training" else [])
    res = subprocess.run([sys.executable, "-m", module, *args, *extra], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2, res.stderr
    line = _one_error_line(res.stderr.strip().splitlines()[-1])
    assert "Traceback" not in res.stderr and line.startswith("error: ") and "(fix: " in line, res.stderr


def test_error_line_splits_the_fix_from_the_message():
    assert error_line(FileExistsError("out holds other data; pass --overwrite"), "x") == \
        "error: out holds other data (fix: pass --overwrite)"
    assert error_line(KeyError("unknown model adapter 'x'; valid names: demo, tiny"), "x") == \
        "error: unknown model adapter 'x' (fix: use one of: demo, tiny)"
    assert error_line(ValueError("batch size must be\n positive"), "see --help") == \
        "error: batch size must be positive (fix: see --help)"
    assert error_line(InputError("no studies", "run radinterp phantoms"), "x") == \
        "error: no studies (fix: run radinterp phantoms)"


def test_bugs_are_not_user_errors():
    assert is_user_error(ValueError("bad")) and is_user_error(FileNotFoundError("x"))
    assert not is_user_error(RuntimeError("bug")) and not is_user_error(TypeError("bug"))
