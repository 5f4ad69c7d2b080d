"""``radinterp publish``: dry-run layouts that SAELens / dictionary_learning / radinterp load,
the model card, refusals, the upload plan against a real HfApi on loopback, and the MAIRA-2
bring-in (a release folder written by the real dictionary_learning trainer)."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import torch

from radinterp.errors import InputError
from radinterp.sae import load_sae
from eval.publish import PublishConfig, publish
from eval.publish.upload import STATE_FILE, execute, hub_api, plan_upload

REPO = "radinterp-test/tiny-sae"


def _as_hub_cache(dry: Path, cache: Path, repo_id: str) -> None:
    """Lay the dry-run folder out as huggingface_hub's local cache of ``repo_id`` (one snapshot)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(dry, repo / "snapshots" / ("0" * 40), ignore=shutil.ignore_patterns(STATE_FILE))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)


def test_dry_run_sae_lens_layout_loads_in_sae_lens(tiny_release, tmp_path, monkeypatch) -> None:
    sae_lens = pytest.importorskip("sae_lens")
    from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name

    (tiny_release.sae / "autointerp").mkdir(exist_ok=True)
    rows = [{"latent": 3, "explainer": "enrichment", "explanation": "pleural effusion | left base"}]
    (tiny_release.sae / "autointerp" / "explanations.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows))
    try:
        plan = publish(PublishConfig(saes=[str(tiny_release.sae)], repo_id=REPO), tmp_path / "dry",
                       dry_run=True)
    finally:
        shutil.rmtree(tiny_release.sae / "autointerp")
    sae_id = tiny_release.sae.name
    files = sorted(p.relative_to(tmp_path / "dry").as_posix() for p in (tmp_path / "dry").rglob("*")
                   if p.is_file())
    assert files == [STATE_FILE, "README.md", f"{sae_id}/cfg.json", f"{sae_id}/explanations.jsonl",
                     f"{sae_id}/metrics.json", f"{sae_id}/sae_weights.safetensors"]
    # SAE.from_pretrained(REPO, sae_id) reads SAE_ID/cfg.json + weights of REPO: here through the
    # real hf_hub_download, offline, from a Hub cache holding exactly the dry-run files
    assert get_repo_id_and_folder_name(REPO, sae_id) == (REPO, sae_id)
    import huggingface_hub.constants as hub_constants

    _as_hub_cache(tmp_path / "dry", tmp_path / "hub", REPO)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    ours = load_sae(tiny_release.sae)
    x = torch.randn(32, ours.d_in) * 3
    for theirs in (sae_lens.SAE.load_from_disk(str(tmp_path / "dry" / sae_id)),
                   sae_lens.SAE.from_pretrained(REPO, sae_id)):
        with torch.no_grad():
            assert torch.allclose(theirs.encode(x), ours.encode(x), atol=1e-5)
    card = (tmp_path / "dry" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: saelens\nlicense: mit\n")
    m = json.loads((tiny_release.eval_out / "metrics.json").read_text())
    ev = f"{m['reconstruction']['trained']['overall']['explained_variance']:.4f}"
    assert ev in card and "random SAE" in card and "CE-loss score" in card
    assert f'SAE.from_pretrained("{REPO}", "{sae_id}")' in card and "pleural effusion" in card
    # the plan uploads exactly the staged SAE folder and card, into the SAE id's folder
    assert [c.method for c in plan] == ["create_repo", "upload_folder", "upload_file"]
    assert plan[1].kwargs["folder_path"] == str(tmp_path / "dry" / sae_id)
    assert plan[1].kwargs["path_in_repo"] == sae_id and plan[0].kwargs["private"] is True


def test_dictionary_learning_layout_without_labels(tiny_release, tmp_path) -> None:
    (tmp_path / "ai").mkdir()
    (tmp_path / "ai" / "explanations.jsonl").write_text('{"latent": 1, "explanation": "secret phrase"}\n')
    publish(PublishConfig(saes=[str(tiny_release.sae)], repo_id=REPO, layout="dictionary_learning",
                          autointerp=[str(tmp_path / "ai")], include_labels=False),
            tmp_path / "dl", dry_run=True)
    folder = tmp_path / "dl" / tiny_release.sae.name
    assert sorted(p.name for p in folder.iterdir()) == ["ae.pt", "config.json", "metrics.json"]
    card = (tmp_path / "dl" / "README.md").read_text()
    assert "library_name: dictionary-learning" in card and "secret phrase" not in card
    back, ours = load_sae(folder), load_sae(tiny_release.sae)
    assert torch.equal(back.W_dec, ours.W_dec) and back.cfg.widths == ours.cfg.widths


def test_refusals(tiny_release, tmp_path) -> None:
    with pytest.raises(InputError, match="not ORG/NAME"):
        PublishConfig(saes=[str(tiny_release.sae)], repo_id="just-a-name")
    bare = tmp_path / "bare"
    shutil.copytree(tiny_release.sae, bare, ignore=shutil.ignore_patterns("eval"))
    with pytest.raises(InputError, match="no eval metrics"):
        publish(PublishConfig(saes=[str(bare)], repo_id=REPO), tmp_path / "d1", dry_run=True)
    (tmp_path / "neither").mkdir()
    with pytest.raises(ValueError, match="not an SAE folder in a known layout"):
        publish(PublishConfig(saes=[str(tmp_path / "neither")], repo_id=REPO), tmp_path / "d2", dry_run=True)
    # a folder that loads differently from its source is refused before any upload
    from eval.publish.layout import check_loads_back
    from radinterp.sae import save_sae

    broken = load_sae(tiny_release.sae)
    with torch.no_grad():
        broken.W_dec.mul_(2)
    save_sae(broken, tmp_path / "broken")
    with pytest.raises(InputError, match="encodes differently"):
        check_loads_back(tiny_release.sae, tmp_path / "broken", "sae_lens")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        publish(PublishConfig(saes=[str(tiny_release.sae)], repo_id=REPO), tmp_path / "busy", dry_run=True)


class _Hub(BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Hub.seen.append((self.path, self.headers.get("authorization"), json.loads(body or b"{}")))
        out = json.dumps({"url": f"http://127.0.0.1/{REPO}", "name": REPO}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def test_upload_plan_runs_against_a_loopback_hub(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    with pytest.raises(InputError, match="HF_TOKEN"):
        hub_api()
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    server = HTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        api = hub_api(f"http://127.0.0.1:{server.server_port}")
        plan = plan_upload(tmp_path, REPO, ["sae_a"])
        assert execute(plan[:1], api, tmp_path) == ["create_repo"]
    finally:
        server.shutdown()
    path, auth, body = _Hub.seen[-1]
    assert path == "/api/repos/create" and auth == "Bearer hf_test_token"
    assert body["name"] == "tiny-sae" and body["organization"] == "radinterp-test" and body["visibility"] == "private"
    assert "hf_test_token" not in (tmp_path / STATE_FILE).read_text()

    class Recorder:  # the calls after create_repo, recorded; a rerun skips finished ones
        calls: list = []

        def __getattr__(self, name):
            return lambda **kw: Recorder.calls.append((name, kw))

    assert execute(plan, Recorder(), tmp_path) == ["create_repo", "sae:sae_a", "card"]
    assert execute(plan, Recorder(), tmp_path) == ["create_repo"]
    assert [c[0] for c in Recorder.calls] == ["create_repo", "upload_folder", "upload_file", "create_repo"]


def test_maira2_release_folder_evaluates_and_republishes(tiny_release, tmp_path, monkeypatch) -> None:
    """A trainer folder as microsoft/maira-2-sae ships it, written by dictionary_learning's own
    MatryoshkaBatchTopK trainer on the tiny store's activations."""
    from tests.sae.test_formats import _import_dictionary_learning_trainer
    from radinterp.store import open_store
    from eval.sae_eval import EvalConfig, run_eval

    Trainer = _import_dictionary_learning_trainer(monkeypatch)
    store = open_store(tiny_release.acts)
    site = store.sites[0]
    x = torch.cat([a for a, _ in store.iter_chunks(site)])  # (N, d_model)
    torch.manual_seed(0)
    trainer = Trainer(steps=60, activation_dim=store.d_model, dict_size=64, k=4, layer=1, lm_name="tiny",
                      group_fractions=[0.25, 0.75], lr=1e-3, warmup_steps=5, threshold_start_step=10,
                      device="cpu", seed=0, submodule_name=site)
    for step in range(60):
        trainer.update(step, x[torch.randint(0, x.shape[0], (256,))])
    release = tmp_path / "maira-2-sae" / "trainer_0"
    release.mkdir(parents=True)
    (release / "config.json").write_text(json.dumps({"trainer": trainer.config}, indent=4))
    torch.save({k: v.cpu() for k, v in trainer.ae.state_dict().items()}, release / "ae.pt")

    sae = load_sae(release)
    assert sae.cfg.widths == [16, 64] and sae.cfg.site is None  # the release records no canonical site
    m = run_eval(EvalConfig(sae=str(release), acts=str(tiny_release.acts), out=str(release / "eval"),
                            site=site, fidelity_studies=0, probe_studies=0, max_tokens=800, progress=False))
    assert m["rows"]["mode"] == "all" and m["reconstruction"]["trained"]["overall"]["rows"] == 800
    publish(PublishConfig(saes=[str(release)], repo_id=REPO), tmp_path / "out", dry_run=True)
    sae_lens = pytest.importorskip("sae_lens")
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path / "out" / "trainer_0"))
    xs = x[:64]
    with torch.no_grad():
        assert torch.allclose(theirs.encode(xs), trainer.ae.encode(xs), atol=1e-4)


def test_cli_bad_repo_id_is_one_line(tiny_release, tmp_path) -> None:
    import typer
    from typer.testing import CliRunner

    from eval.publish.cli import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer's multi-command layout
        pass

    res = CliRunner().invoke(app, ["publish", "--sae", str(tiny_release.sae), "--repo-id", "org/name/x",
                                   "--dry-run", str(tmp_path / "d")])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: repo id 'org/name/x' is not ORG/NAME (fix: ")
    res = CliRunner().invoke(app, ["publish", "--sae", str(tiny_release.sae), "--repo-id", REPO,
                                   "--dry-run", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    assert "would upload: upload_folder" in res.output and (tmp_path / "d" / "README.md").is_file()
