"""``radinterp phantoms`` command: success, no-op rerun, and clear errors on bad input."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from radinterp.data.phantoms.cli import register
from radinterp.data.phantoms import read_records


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # keep "phantoms" as a named subcommand
        pass

    return app


def _run(*args: str):
    return CliRunner().invoke(_app(), ["phantoms", *args])


def test_generate_and_rerun(tmp_path):
    out = tmp_path / "ph"
    res = _run("--n", "4", "--seed", "2", "--size", "96", "--out", str(out), "--no-progress",
               "--findings", "pleural_effusion=0.9,pacemaker")
    assert res.exit_code == 0, res.output
    recs = read_records(out)
    assert len(recs) == 4
    assert all(set(r["findings"]) <= {"pleural_effusion", "pacemaker"} for r in recs)
    again = _run("--n", "4", "--seed", "2", "--size", "96", "--out", str(out), "--no-progress",
                 "--findings", "pleural_effusion=0.9,pacemaker")
    assert again.exit_code == 0


def test_bad_inputs_exit_with_clear_errors(tmp_path):
    out = tmp_path / "ph"
    res = _run("--n", "2", "--out", str(out), "--findings", "cardiomegaly,unicorn")
    assert res.exit_code == 2 and "unknown phantom finding 'unicorn'" in res.output
    assert "pleural_effusion" in res.output  # lists the valid names
    res = _run("--n", "2", "--out", str(out), "--size", "5000")
    assert res.exit_code == 2 and "64..1024" in res.output
    res = _run("--n", "2", "--out", str(out), "--findings", "edema=lots")
    assert res.exit_code == 2 and "must be a number" in res.output
    assert not out.exists()
    ok = _run("--n", "2", "--size", "96", "--out", str(out), "--no-progress")
    assert ok.exit_code == 0
    clash = _run("--n", "3", "--size", "96", "--out", str(out), "--no-progress")
    assert clash.exit_code == 2 and "--overwrite" in clash.output
    assert len(read_records(out)) == 2
    forced = _run("--n", "3", "--size", "96", "--out", str(out), "--no-progress", "--overwrite")
    assert forced.exit_code == 0 and len(read_records(out)) == 3
