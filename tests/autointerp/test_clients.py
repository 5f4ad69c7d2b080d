"""Chat clients against real parts: SmolLM2 in-process, and ``transformers serve`` with the
SmolLM2 GGUF on loopback behind a fault-injecting proxy (429, 500, dropped connections,
truncated JSON). The server tests are ``slow`` (the server takes about a minute to start)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autointerp.clients import (CLIENTS, LLMRequestError, LocalClient, LocalClientConfig,
                                MalformedReply, OpenAIClient, OpenAIClientConfig, build_client,
                                gather_limited, is_loopback_url, run_sync)
from autointerp.clients.cache import request_key
from autointerp.clients.openai_client import parse_completion
from tests.autointerp.conftest import FaultProxy, free_port

REPO = Path(__file__).resolve().parents[2]
QUESTIONS = ["Name one organ in the chest.", "What color is the sky?", "Say a number.",
             "Name a bone.", "What is water made of?", "Name a fruit.", "Name a planet.",
             "What do lungs do?"]


def _msgs(q: str) -> list[dict]:
    return [{"role": "user", "content": q}]


# ---------------------------------------------------------------- fast: no server needed


def test_registry_and_build():
    assert {"local", "openai"} <= set(CLIENTS.names())
    client = build_client("openai", model="m", base_url="http://localhost:9/v1")
    assert isinstance(client, OpenAIClient) and client.config.model == "m"
    with pytest.raises(KeyError, match="valid names: .*local"):
        CLIENTS.get("nope")


@pytest.mark.parametrize("url", ["https://api.openai.com/v1", "http://10.0.0.5:8000/v1",
                                 "http://127.example.com/v1", "http://[2001:db8::1]/v1"])
def test_external_endpoint_refused_without_flag(url, monkeypatch):
    with pytest.raises(ValueError, match="--allow-external-endpoint"):
        OpenAIClientConfig(model="m", base_url=url)
    cfg = OpenAIClientConfig(model="m", base_url=url, allow_external_endpoint=True)
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ValueError, match="NO_SUCH_KEY_VAR"):  # external needs a real key
        OpenAIClient(dataclasses_replace(cfg, key_env="NO_SUCH_KEY_VAR"))


def dataclasses_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "http://127.3.4.5/v1",
                                 "http://[::1]:8000/v1", "http://LOCALHOST:1/v1"])
def test_loopback_endpoints_accepted(url):
    assert is_loopback_url(url)
    OpenAIClientConfig(model="m", base_url=url)


def test_config_validation_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match="--model"):
        OpenAIClientConfig()
    with pytest.raises(ValueError, match="concurrency >= 1"):
        OpenAIClientConfig(model="m", concurrency=0)
    with pytest.raises(FileNotFoundError, match="model folder or a .gguf"):
        LocalClientConfig(model=str(tmp_path / "missing"))
    (tmp_path / "w.bin").write_text("x")
    with pytest.raises(ValueError, match="not .gguf"):
        LocalClientConfig(model=str(tmp_path / "w.bin"))
    with pytest.raises(ValueError, match="float32"):
        LocalClientConfig(dtype="int3")


def test_cache_key_ignores_endpoint_and_key_but_not_the_request(monkeypatch):
    monkeypatch.setenv("K1", "secret-one")
    a = OpenAIClient(OpenAIClientConfig(model="m", base_url="http://127.0.0.1:1/v1", key_env="K1"))
    b = OpenAIClient(OpenAIClientConfig(model="m", base_url="http://localhost:2/v1"))
    ra = a.request(_msgs("hi"), max_tokens=5, temperature=0.0, seed=None)
    rb = b.request(_msgs("hi"), max_tokens=5, temperature=0.0, seed=None)
    assert request_key(ra) == request_key(rb)
    assert request_key(ra) != request_key({**ra, "max_tokens": 6})
    assert request_key(ra) != request_key({**ra, "messages": _msgs("hi!")})
    assert "secret-one" not in repr(a) and "secret-one" not in json.dumps(a.config.to_dict())


def test_parse_completion_rejects_malformed():
    ok = parse_completion(json.dumps({"choices": [{"message": {"content": "x"}}],
                                      "usage": {"prompt_tokens": 3, "completion_tokens": 1}}))
    assert (ok.text, ok.prompt_tokens, ok.completion_tokens) == ("x", 3, 1)
    for body in ['{"choices": [', '{"choices": []}', '{"choices": [{"message": {"content": null}}]}']:
        with pytest.raises(MalformedReply):
            parse_completion(body)


def test_retries_are_bounded_then_clear_error():
    upstream = f"http://127.0.0.1:{free_port()}"  # never reached: every request faults
    with FaultProxy(upstream, always="500") as proxy:
        client = OpenAIClient(OpenAIClientConfig(model="m", base_url=proxy.url, max_attempts=3,
                                                 backoff_s=0.01))
        with pytest.raises(LLMRequestError, match="failed 3 times.*500"):
            client.chat_sync(_msgs("hi"), max_tokens=4)
        assert proxy.n_received == 3 and client.usage.retries == 2
    with FaultProxy(upstream, always="400") as proxy:  # not retryable: one request
        client = OpenAIClient(OpenAIClientConfig(model="m", base_url=proxy.url, backoff_s=0.01))
        with pytest.raises(LLMRequestError, match="400"):
            client.chat_sync(_msgs("hi"), max_tokens=4)
        assert proxy.n_received == 1


def test_run_sync_inside_a_running_loop():
    async def inner() -> tuple[int, int]:
        await asyncio.sleep(0.01)
        return 7, threading.get_ident()

    async def notebook_cell() -> tuple[int, int]:
        asyncio.get_running_loop()  # a loop is running, as in Jupyter
        return run_sync(inner())

    value, thread = asyncio.run(notebook_cell())
    assert value == 7 and thread != threading.get_ident()
    assert run_sync(inner())[0] == 7  # and without a running loop


def test_gather_limited_bounds_concurrency_and_keeps_order():
    running, peak = 0, 0

    async def job(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return i

    out = asyncio.run(gather_limited([job(i) for i in range(10)], concurrency=3))
    assert out == list(range(10)) and peak == 3
    with pytest.raises(ValueError, match="concurrency >= 1"):
        asyncio.run(gather_limited([], concurrency=0))


# ---------------------------------------------------------------- local SmolLM2 in-process


@pytest.fixture(scope="module")
def local_client():
    return LocalClient()


def test_local_client_is_deterministic_and_counts_tokens(local_client):
    m = _msgs("Name one organ in the chest.")
    a = local_client.chat_sync(m, max_tokens=10)
    b = local_client.chat_sync(m, max_tokens=10)
    assert a.text and a.text == b.text and not a.cached
    assert a.prompt_tokens > 5 and 0 < a.completion_tokens <= 10
    assert local_client.usage.requests >= 2
    assert local_client.usage.completion_tokens >= 2 * a.completion_tokens
    other = local_client.chat_sync(_msgs("What color is the sky?"), max_tokens=10)
    assert other.text != a.text


def test_local_client_chat_sync_inside_running_loop(local_client):
    m = _msgs("Say a number.")
    direct = local_client.chat_sync(m, max_tokens=6)

    async def cell():
        return local_client.chat_sync(m, max_tokens=6)

    assert asyncio.run(cell()).text == direct.text


@pytest.mark.slow
def test_local_client_reads_a_named_gguf_file(local_client):
    """A GGUF path the user names (here the wheel's own file: parsing it takes ~40 s) gives the
    same greedy answer as the default, which loads the core's cached copy of that file."""
    from radinterp.assets import SMOLLM2_GGUF, smollm2_dir

    m = _msgs("Name one organ in the chest.")
    named = LocalClient(LocalClientConfig(model=str(smollm2_dir() / SMOLLM2_GGUF)))
    assert named.chat_sync(m, max_tokens=10).text == local_client.chat_sync(m, max_tokens=10).text


# ---------------------------------------------------------------- real server (slow)


def _client(url: str, model: str, **kw) -> OpenAIClient:
    return OpenAIClient(OpenAIClientConfig(model=model, base_url=url, backoff_s=0.05, **kw))


def _ask_all(client: OpenAIClient, questions: list[str], concurrency: int) -> list:
    async def run():
        return await gather_limited([client.chat(_msgs(q), max_tokens=8) for q in questions],
                                    concurrency)

    return run_sync(run())


@pytest.mark.slow
def test_faults_lose_nothing_and_rerun_costs_no_request(tf_server, tmp_path):
    qs = QUESTIONS[:6]
    direct = _ask_all(_client(tf_server["url"] + "/v1", tf_server["model"]), qs, 1)
    cache = str(tmp_path / "llm-cache")
    faults = {1: "429", 2: "500", 3: "drop", 4: "badjson"}
    with FaultProxy(tf_server["url"], faults) as proxy:
        client = _client(proxy.url, tf_server["model"], cache_dir=cache, concurrency=3)
        got = _ask_all(client, qs + qs[:2], 8)  # two asked twice at once: sent once
        assert [r.text for r in got] == [r.text for r in direct + direct[:2]]  # all, and right
        assert proxy.n_received == len(qs) + len(faults)
        assert client.usage.retries == len(faults) and client.usage.requests == len(qs)
        assert client.usage.cached == 2 and [r.cached for r in got[-2:]] == [True, True]
        assert client.usage.completion_tokens == sum(r.completion_tokens for r in direct) > 0
    with FaultProxy(tf_server["url"]) as proxy:  # rerun on the same cache: zero requests
        client = _client(proxy.url, tf_server["model"], cache_dir=cache)
        again = _ask_all(client, qs, 4)
        assert proxy.n_received == 0 and all(r.cached for r in again)
        assert [r.text for r in again] == [r.text for r in direct]
        assert client.usage.cached == len(qs) and client.usage.requests == 0


_KILLED_RUN = """
import sys
from autointerp.clients import OpenAIClient, OpenAIClientConfig, gather_limited, run_sync
url, model, cache = sys.argv[1:4]
qs = sys.argv[4:]
c = OpenAIClient(OpenAIClientConfig(model=model, base_url=url, cache_dir=cache, concurrency=1))
async def main():
    return await gather_limited([c.chat([{"role": "user", "content": q}], max_tokens=8)
                                 for q in qs], 1)
run_sync(main())
"""


@pytest.mark.slow
def test_killed_run_resumes_from_cache(tf_server, tmp_path):
    cache = tmp_path / "llm-cache"
    with FaultProxy(tf_server["url"], delay_s=0.4) as proxy:
        proc = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, proxy.url, tf_server["model"],
                                 str(cache), *QUESTIONS], env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.time() + 120
        while len(list(cache.glob("*/*.json"))) < 3 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = len(list(cache.glob("*/*.json")))
    assert 3 <= done < len(QUESTIONS), "the run was not killed midway"
    with FaultProxy(tf_server["url"]) as proxy:
        client = _client(proxy.url, tf_server["model"], cache_dir=str(cache))
        got = _ask_all(client, QUESTIONS, 4)
        assert proxy.n_received == len(QUESTIONS) - done
        assert sum(r.cached for r in got) == done and all(r.text for r in got)
    assert len(list(cache.glob("*/*.json"))) == len(QUESTIONS)


@pytest.mark.slow
def test_api_key_never_written_or_logged(tf_server, tmp_path, monkeypatch, caplog):
    key = "sk-test-" + secrets.token_hex(16)
    monkeypatch.setenv("RADINTERP_TEST_LLM_KEY", key)
    out = tmp_path / "out"
    caplog.set_level(logging.DEBUG)
    with FaultProxy(tf_server["url"], {1: "429"}) as proxy:
        client = _client(proxy.url, tf_server["model"], key_env="RADINTERP_TEST_LLM_KEY",
                         cache_dir=str(out / "llm-cache"))
        reply = client.chat_sync(_msgs("Name a bone."), max_tokens=6)
        assert reply.text and proxy.auth[-1] == f"Bearer {key}"  # the key was really used
    client.config.save(out / "cfg.json")
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) >= 2
    for p in files:
        assert key not in p.read_text(errors="replace"), p
    assert "RADINTERP_TEST_LLM_KEY" in (out / "cfg.json").read_text()
    assert key not in caplog.text and "attempt 1/" in caplog.text
    assert key not in repr(client) and key not in str(client.__dict__.get("config"))
