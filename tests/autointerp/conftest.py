"""A real tiny store with planted latents and a real saved SAE that reads them.

Each study has 4 image rows (a 2 x 2 frontal patch grid) and 6 text rows (2 boilerplate, 4
report). Activations are small noise plus planted coordinates; the SAE's encoder is the
identity on the first ``D_SAE`` coordinates with threshold 0.5, so latent j fires exactly
where coordinate j was planted:

- latent 0 (image, patient's right): patches in column 0 of studies i % 3 == 0;
- latent 1 (text): report row 6 of studies i % 4 == 1;
- latent 2 (both): image row 0 and report row 7 of studies i % 5 == 2;
- latent 3 (wide range of values): one row of even studies, values 0.6 .. 10;
- latent 4 (context): studies i % 3 in {0, 1}, so i % 3 == 1 studies are latent 0's hard
  negatives;
- latent 5: never fires.

Also the LLM server parts shared by the client and pipeline tests: ``tf_server`` (session
scoped: ``transformers serve`` of the SmolLM2 GGUF on loopback, started once) and
``FaultProxy`` (a loopback proxy injecting 429, 500, dropped connections, bad JSON).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch

from radinterp.sae import SAEConfig, SparseAutoencoder, load_sae, save_sae
from radinterp.store import StoreWriter, make_manifest, open_store

SITE = "lm.blocks.1.resid_post"
D, D_SAE, N_STUDIES, N_ROWS = 8, 6, 60, 10
IMAGE, BOILERPLATE, REPORT = 0, 1, 3


def planted_study(i: int, rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    x = rng.normal(0.0, 0.05, (N_ROWS, D))
    if i % 3 == 0:
        x[[0, 2], 0] = 1.0 + i / 20 + np.array([0.0, 0.3])  # patches (0, 0) and (1, 0)
    if i % 4 == 1:
        x[6, 1] = 0.8 + rng.uniform(0, 2)
    if i % 5 == 2:
        x[[0, 7], 2] = 1.5 + rng.uniform(0, 1, 2)
    if i % 2 == 0:
        x[rng.integers(N_ROWS), 3] = 0.6 + 9.4 * (i / N_STUDIES)
    if i % 3 in (0, 1):
        x[5, 4] = 2.0 + rng.uniform(0, 0.1)
    pos = np.arange(N_ROWS)
    img = pos < 4
    meta = {
        "study_index": np.zeros(N_ROWS, np.int32),
        "position": (pos + 3).astype(np.int32),
        "token_id": (pos + 100 * i).astype(np.int32),
        "kind": np.where(img, IMAGE, np.where(pos < 6, BOILERPLATE, REPORT)).astype(np.int8),
        "image_slot": np.where(img, 0, -1).astype(np.int8),
        "patch_row": np.where(img, pos // 2, -1).astype(np.int16),
        "patch_col": np.where(img, pos % 2, -1).astype(np.int16),
        "field": np.full(N_ROWS, -1, np.int8),
    }
    return torch.tensor(x, dtype=torch.float32), meta


@pytest.fixture
def planted_store(tmp_path):
    manifest = make_manifest(model="synthetic", sites=[SITE], dtype="float32", d_model=D,
                             token_filter="all", shard_bytes=3000)
    rng = np.random.default_rng(0)
    with StoreWriter(tmp_path / "acts", manifest) as w:
        for k in range(0, N_STUDIES, 3):
            parts = [planted_study(i, rng) for i in range(k, k + 3)]
            meta = {c: np.concatenate([p[1][c] for p in parts]) for c in parts[0][1]}
            meta["study_index"] = np.repeat(np.arange(3, dtype=np.int32), N_ROWS)
            w.append([f"s{i:03d}" for i in range(k, k + 3)],
                     {SITE: torch.cat([p[0] for p in parts])}, meta)
    store = open_store(tmp_path / "acts")
    assert len(store.shards) > 3
    return store


@pytest.fixture
def planted_sae(tmp_path):
    sae = SparseAutoencoder(SAEConfig(d_in=D, d_sae=D_SAE, k=2, site=SITE))
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(D)[:, :D_SAE])
        sae.W_dec.copy_(torch.eye(D)[:D_SAE])
        sae.threshold.fill_(0.5)
    save_sae(sae, tmp_path / "sae")
    return load_sae(tmp_path / "sae")


def brute_codes(store, sae) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """Every row's codes (n_rows, d_sae) and metadata, from one full read."""
    meta = store.metadata()
    with torch.no_grad():
        z = sae.encode(store.get_rows(SITE, np.arange(len(meta["row"]))))
    return z, meta


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FaultProxy:
    """Loopback HTTP proxy to ``upstream`` that answers request number n (1-based, in arrival
    order) with ``faults[n]`` ("429", "500", "400", "drop", "badjson") or ``always``."""

    def __init__(self, upstream: str, faults: dict[int, str] | None = None,
                 always: str | None = None, delay_s: float = 0.0) -> None:
        self.upstream, self.faults, self.always, self.delay_s = upstream, faults or {}, always, delay_s
        self.n_received = 0
        self.auth: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes, extra: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy._lock:
                    proxy.n_received += 1
                    n = proxy.n_received
                    proxy.auth.append(self.headers.get("Authorization", ""))
                fault = proxy.faults.get(n, proxy.always)
                if fault in ("429", "500", "400"):
                    err = json.dumps({"error": {"message": f"injected {fault}"}}).encode()
                    return self._send(int(fault), err, {"Retry-After": "0"})
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                time.sleep(proxy.delay_s)
                req = urllib.request.Request(proxy.upstream + self.path, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=300) as r:
                        status, out = r.status, r.read()
                except urllib.error.HTTPError as e:
                    status, out = e.code, e.read()
                if fault == "badjson":
                    out = out[: len(out) // 2]
                return self._send(status, out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def tf_server(tmp_path_factory):
    """``transformers serve`` with the SmolLM2 GGUF on a free loopback port (or, when
    ``RADINTERP_TEST_SERVE_URL`` names one already serving that model on loopback, that one:
    for reruns on a busy machine, where starting the server takes minutes)."""
    from radinterp.assets import SMOLLM2_GGUF, smollm2_dir

    model = f"{smollm2_dir()}:{SMOLLM2_GGUF}"
    if url := os.environ.get("RADINTERP_TEST_SERVE_URL"):
        assert url.startswith(("http://127.", "http://localhost")), url
        yield {"url": url.rstrip("/"), "model": model}
        return
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    code = "import sys; from transformers.cli.transformers import main; sys.exit(main())"
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    log_file = open(log_path, "w")  # a file, not a pipe: a full pipe would stall the server
    proc = subprocess.Popen([sys.executable, "-c", code, "serve", model, "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], env=env,
                            stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 240
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                if time.time() > deadline:
                    pytest.fail("transformers serve did not become ready in 240 s")
                time.sleep(0.5)
        yield {"url": f"http://127.0.0.1:{port}", "model": model}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()
