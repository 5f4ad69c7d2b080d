"""The ``openai`` client: any OpenAI-compatible chat endpoint through the ``openai`` package.

OpenAI, Azure, vLLM, llama.cpp's server and ``transformers serve`` all speak it. Requests run
concurrently up to ``concurrency``; the package's own retries are off and ours apply: 429,
5xx, timeouts, dropped connections and replies that are not the expected JSON are retried
with exponential backoff and jitter, up to ``max_attempts``, then raise
:class:`LLMRequestError`. With ``cache_dir`` set, every finished reply is kept on disk
(:mod:`autointerp.clients.cache`), so a rerun or a resumed run asks only for what is missing.

Patient data: the base URL must be loopback (127.0.0.0/8, ::1, localhost) unless
``allow_external_endpoint`` (CLI ``--allow-external-endpoint``) is set. The API key is read
from the environment variable ``key_env`` when the client is built and is kept only inside
the ``openai`` client object: never in configs, caches, logs or reprs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import random
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from autointerp.clients.base import CLIENTS, ChatClient, ChatReply, Message, is_loopback_url
from autointerp.clients.cache import ReplyCache, request_key
from radinterp.config import BaseConfig

log = logging.getLogger(__name__)

EXTERNAL_FLAG = "--allow-external-endpoint"


class LLMRequestError(RuntimeError):
    """A request that failed for good (non-retryable status, or out of attempts)."""


class MalformedReply(ValueError):
    """The endpoint answered 2xx with something that is not a chat completion."""


@dataclasses.dataclass
class OpenAIClientConfig(BaseConfig):
    """An OpenAI-compatible endpoint and how hard to try it."""

    model: str = ""
    """Model name the server knows (as listed at ``BASE_URL/models``)."""
    base_url: str = "http://127.0.0.1:8000/v1"
    """Endpoint root, up to and including ``/v1``."""
    key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the API key (the key itself is never stored;
    a loopback server without one gets a placeholder)."""
    allow_external_endpoint: bool = False
    """Allow a non-loopback base URL; report text then leaves this machine."""
    concurrency: int = 4
    """Requests in flight at once."""
    max_attempts: int = 6
    """Tries per request (first one included) before :class:`LLMRequestError`."""
    backoff_s: float = 0.5
    """First retry delay; doubles per attempt, with +-50% jitter, capped at ``backoff_max_s``."""
    backoff_max_s: float = 30.0
    """Longest delay between two attempts (also caps a server's Retry-After)."""
    timeout_s: float = 120.0
    """Seconds one attempt may take before it counts as a timeout."""
    cache_dir: str | None = None
    """Folder of the persistent reply cache (e.g. ``OUT/llm-cache``); None: no cache."""

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("OpenAIClientConfig needs model; pass --model NAME "
                             "(a name the server lists at BASE_URL/models)")
        if urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ValueError(f"base_url={self.base_url!r} is not an http(s) URL; pass e.g. "
                             "http://127.0.0.1:8000/v1")
        if not self.allow_external_endpoint and not is_loopback_url(self.base_url):
            raise ValueError(
                f"refusing non-loopback endpoint {self.base_url!r}: report text is patient data; "
                f"pass {EXTERNAL_FLAG} (allow_external_endpoint=True) to send it there, or use "
                "a server on 127.0.0.1 / localhost")
        for name in ("concurrency", "max_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}; pass {name} >= 1")
        for name in ("backoff_s", "backoff_max_s", "timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)}; pass {name} > 0")
        if self.cache_dir is not None:
            self.cache_dir = str(Path(self.cache_dir).expanduser())


def _retryable(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, (openai.APIConnectionError, MalformedReply)):  # timeouts included
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


def _retry_after(exc: BaseException) -> float | None:
    resp = getattr(exc, "response", None)
    value = resp.headers.get("retry-after") if resp is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def parse_completion(body: str) -> ChatReply:
    """A chat-completions JSON body -> :class:`ChatReply`; :class:`MalformedReply` otherwise."""
    try:
        data = json.loads(body)
        text = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise MalformedReply(f"not a chat completion ({type(e).__name__}: {e}); "
                             f"body starts {body[:80]!r}") from None
    if not isinstance(text, str):
        raise MalformedReply(f"message content is {type(text).__name__}, not text")
    usage = data.get("usage") or {}
    return ChatReply(text=text, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                     completion_tokens=int(usage.get("completion_tokens") or 0))


@CLIENTS.register("openai")
class OpenAIClient(ChatClient):
    """Async OpenAI-compatible client with a concurrency limit, retries and a reply cache."""

    config_class = OpenAIClientConfig

    def __init__(self, config: OpenAIClientConfig) -> None:
        super().__init__(config)
        key = os.environ.get(config.key_env)
        if not key:
            if not is_loopback_url(config.base_url):
                raise ValueError(f"no API key for {config.base_url}; set the environment "
                                 f"variable {config.key_env} (keys are read only from the environment)")
            key = "EMPTY"  # local servers ignore it; the openai package insists on one
        self._key = key
        self.cache = ReplyCache(config.cache_dir) if config.cache_dir else None
        self._loop_state: tuple[Any, Any, asyncio.Semaphore, dict] | None = None
        self._state_lock = threading.Lock()

    def __getstate__(self) -> dict:
        raise TypeError("OpenAIClient holds an API key and is not picklable; "
                        "pass its config and build a new client")

    def _state(self) -> tuple[Any, asyncio.Semaphore, dict[str, asyncio.Task]]:
        """The ``openai.AsyncOpenAI`` client, semaphore and in-flight requests of the running
        loop (made per loop, since connections and semaphores cannot cross event loops)."""
        import openai

        loop = asyncio.get_running_loop()
        with self._state_lock:
            if self._loop_state is None or self._loop_state[0] is not loop:
                client = openai.AsyncOpenAI(base_url=self.config.base_url, api_key=self._key,
                                            max_retries=0, timeout=self.config.timeout_s)
                self._loop_state = (loop, client, asyncio.Semaphore(self.config.concurrency), {})
            return self._loop_state[1:]

    def request(self, messages: list[Message], *, max_tokens: int, temperature: float,
                seed: int | None) -> dict[str, Any]:
        """The request body (and cache key material): no endpoint, no key."""
        req: dict[str, Any] = {"model": self.config.model, "messages": messages,
                               "max_tokens": max_tokens, "temperature": temperature}
        if seed is not None:
            req["seed"] = seed
        return req

    async def _chat(self, messages: list[Message], *, max_tokens: int, temperature: float,
                    seed: int | None) -> ChatReply:
        req = self.request(messages, max_tokens=max_tokens, temperature=temperature, seed=seed)
        key = request_key(req)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            log.debug("cache hit %s", key[:12])
            return hit
        inflight = self._state()[2]
        task = inflight.get(key)
        owner = task is None
        if task is None:  # an identical request already in flight is awaited, not repeated
            task = asyncio.ensure_future(self._fetch(req, key))
            inflight[key] = task
            task.add_done_callback(lambda _t: inflight.pop(key, None))
        reply = await asyncio.shield(task)
        return reply if owner else dataclasses.replace(reply, cached=True)

    async def _fetch(self, req: dict[str, Any], key: str) -> ChatReply:
        reply = await self._post(req, key)
        if self.cache is not None:
            self.cache.put(key, reply)
        return reply

    async def _post(self, req: dict[str, Any], key: str) -> ChatReply:
        client, sem, _ = self._state()
        cfg = self.config
        for attempt in range(1, cfg.max_attempts + 1):
            try:
                async with sem:
                    raw = await client.chat.completions.with_raw_response.create(**req)
                    body = raw.text
                return parse_completion(body)
            except Exception as e:  # noqa: BLE001 - sorted into retryable or not below
                what = f"{type(e).__name__}: {e}"
                if not _retryable(e):
                    raise LLMRequestError(f"request {key[:12]} to {cfg.base_url} failed: {what} "
                                          "(fix: check --model, the server and the key in "
                                          f"${cfg.key_env})") from e
                if attempt == cfg.max_attempts:
                    raise LLMRequestError(
                        f"request {key[:12]} to {cfg.base_url} failed {attempt} times, last: "
                        f"{what} (fix: check the server, lower --concurrency, or raise "
                        "max_attempts)") from e
                delay = min(cfg.backoff_max_s, cfg.backoff_s * 2 ** (attempt - 1))
                delay *= 0.5 + random.random()
                if (after := _retry_after(e)) is not None:
                    delay = min(cfg.backoff_max_s, max(delay, after))
                with self._usage_lock:
                    self.usage.retries += 1
                log.warning("request %s attempt %d/%d failed (%s); retrying in %.2fs",
                            key[:12], attempt, cfg.max_attempts, type(e).__name__, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        with self._state_lock:
            state, self._loop_state = self._loop_state, None
        if state is not None and state[0] is asyncio.get_running_loop():
            await state[1].close()
