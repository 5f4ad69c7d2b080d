"""``radinterp label``: labels.jsonl and agreement.json from a JSONL file or a phantom folder;
bad input is one line naming the file and line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from eval.labeler.cli import register
from radinterp.data.phantoms import PhantomConfig, generate_phantoms

sys.path.insert(0, str(Path(__file__).parents[1] / "labels"))
from realistic_reports import CASES  # noqa: E402


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    return app


def test_cli_on_jsonl_and_phantom_folder(tmp_path):
    src = tmp_path / "reports.jsonl"
    rows = [{"study_id": f"s{i}", "report": t, "labels": e} for i, (t, e) in enumerate(CASES[:10])]
    rows.append({"study_id": "nolabels", "report": "Small right pleural effusion."})
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        _app(), ["label", "--data", str(src), "--out", str(out), "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    labels = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert [r["study_id"] for r in labels] == [r["study_id"] for r in rows]
    assert labels[-1]["labels"]["Pleural Effusion"] == 1
    agr = json.loads((out / "agreement.json").read_text())
    assert agr["n_studies"] == 10 and agr["macro_f1"] == pytest.approx(1.0)
    assert {"precision", "recall", "f1"} <= set(agr["observations"]["No Finding"])

    ph = generate_phantoms(PhantomConfig(n=12, seed=5, size=64), tmp_path / "ph", progress=False)
    res = CliRunner().invoke(_app(), ["label", "--data", str(ph), "--out", str(tmp_path / "o2"),
                                      "--no-progress"])
    assert res.exit_code == 0 and "macro_f1=" in res.output
    assert json.loads((tmp_path / "o2" / "agreement.json").read_text())["n_studies"] == 12


@pytest.mark.parametrize("line,message", [
    ('{"study_id": "a"}', "string 'report'"),
    ('{"study_id": "a", "report": "x", "labels": {"Unicorn": 1}}', "unknown observation"),
    ('{"study_id": "a", "report": "x", "labels": {"Edema": 2}}', "1, 0 or -1"),
    ("not json", "not valid JSON"),
])
def test_cli_bad_input(tmp_path, line, message):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"study_id": "ok", "report": "No effusion."}\n' + line + "\n")
    res = CliRunner().invoke(_app(), ["label", "--data", str(src), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and message in res.output and "bad.jsonl:2" in res.output
    missing = CliRunner().invoke(_app(), ["label", "--data", str(tmp_path / "nope"),
                                          "--out", str(tmp_path / "o")])
    assert missing.exit_code == 2 and "not found" in missing.output
