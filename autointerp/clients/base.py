"""The chat-client interface every explainer and scorer talks to.

A client answers ``await client.chat(messages, max_tokens=..., temperature=...)`` with a
:class:`ChatReply`; ``client.chat_sync(...)`` and :func:`run_sync` give the same from plain
Python, also inside a running event loop (Jupyter), where the coroutine runs on a worker
thread with a loop of its own. Clients register in :data:`CLIENTS`; the CLI's ``--client``
choices are its keys. Every client keeps token totals in ``client.usage``.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import dataclasses
import ipaddress
import threading
from collections.abc import Awaitable, Coroutine, Iterable
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from radinterp.config import BaseConfig
from radinterp.registry import Registry

T = TypeVar("T")

CLIENTS: Registry[type["ChatClient"]] = Registry("LLM client")

Message = dict[str, Any]  # {"role": "system" | "user" | "assistant", "content": str | list}


@dataclasses.dataclass(frozen=True)
class ChatReply:
    """One answer of a chat model."""

    text: str
    """The assistant message's text."""
    prompt_tokens: int
    """Tokens the request's messages took (as the model counts them)."""
    completion_tokens: int
    """Tokens generated for ``text``."""
    cached: bool = False
    """True when the reply came from the on-disk cache and cost no request."""


@dataclasses.dataclass
class TokenUsage:
    """Running totals for one client (replies from the cache are counted apart)."""

    requests: int = 0
    """Replies the model actually produced (each one request / generation)."""
    cached: int = 0
    """Replies served from the cache without a request."""
    prompt_tokens: int = 0
    """Prompt tokens over the produced replies (cached replies excluded)."""
    completion_tokens: int = 0
    """Completion tokens over the produced replies (cached replies excluded)."""
    retries: int = 0
    """Failed attempts that were retried (429, 5xx, timeouts, dropped connections, bad JSON)."""

    def add(self, reply: ChatReply) -> None:
        if reply.cached:
            self.cached += 1
            return
        self.requests += 1
        self.prompt_tokens += reply.prompt_tokens
        self.completion_tokens += reply.completion_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def check_messages(messages: list[Message]) -> None:
    """Refuse what no chat endpoint accepts, naming the fix."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts; "
                         "pass e.g. [{'role': 'user', 'content': '...'}]")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ValueError(f"message {i} is {m!r}; each message needs 'role' and 'content' keys")


def check_sampling(max_tokens: int, temperature: float) -> None:
    if max_tokens < 1:
        raise ValueError(f"max_tokens={max_tokens}; pass max_tokens >= 1")
    if temperature < 0:
        raise ValueError(f"temperature={temperature}; pass temperature >= 0 (0 = greedy)")


class ChatClient(abc.ABC):
    """Base class: subclasses implement :meth:`_chat`; :meth:`chat` validates and counts."""

    config_class: ClassVar[type[BaseConfig]]
    """The client's typed config; ``build_client`` makes one from keyword options."""
    accepts_images: ClassVar[bool] = True
    """Whether image content parts may be sent (a server may still refuse them)."""

    def __init__(self, config: BaseConfig) -> None:
        self.config = config
        self.usage = TokenUsage()
        self._usage_lock = threading.Lock()

    async def chat(self, messages: list[Message], *, max_tokens: int, temperature: float = 0.0,
                   seed: int | None = None) -> ChatReply:
        """Answer ``messages``; ``temperature=0`` is greedy, ``seed`` fixes sampling."""
        check_messages(messages)
        check_sampling(max_tokens, temperature)
        reply = await self._chat(messages, max_tokens=max_tokens, temperature=temperature, seed=seed)
        with self._usage_lock:
            self.usage.add(reply)
        return reply

    @abc.abstractmethod
    async def _chat(self, messages: list[Message], *, max_tokens: int, temperature: float,
                    seed: int | None) -> ChatReply: ...

    def chat_sync(self, messages: list[Message], *, max_tokens: int, temperature: float = 0.0,
                  seed: int | None = None) -> ChatReply:
        """:meth:`chat` from synchronous code, also inside a running event loop."""
        return run_sync(self.chat(messages, max_tokens=max_tokens, temperature=temperature, seed=seed))

    async def aclose(self) -> None:
        """Release connections / models; the client may be used again afterwards."""

    def __repr__(self) -> str:  # the config's to_dict drops secrets
        return f"{type(self).__name__}({self.config.to_dict()})"


def build_client(name: str, **options: Any) -> ChatClient:
    """``CLIENTS.get(name)`` built from its config's fields, e.g. ``build_client("local")``."""
    cls = CLIENTS.get(name)
    return cls(cls.config_class(**options))


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code, with or without a running event loop.

    Without a running loop this is ``asyncio.run``; inside one (a Jupyter cell) the coroutine
    runs on a worker thread with its own loop, and this call blocks until it is done.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="run_sync") as pool:
        return pool.submit(asyncio.run, coro).result()


async def gather_limited(coros: Iterable[Awaitable[T]], concurrency: int) -> list[T]:
    """``asyncio.gather`` with at most ``concurrency`` awaitables running at once, in order."""
    if concurrency < 1:
        raise ValueError(f"concurrency={concurrency}; pass concurrency >= 1")
    sem = asyncio.Semaphore(concurrency)

    async def one(aw: Awaitable[T]) -> T:
        async with sem:
            return await aw

    return list(await asyncio.gather(*(one(c) for c in coros)))


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is localhost, in 127.0.0.0/8 or ::1."""
    host = urlsplit(url).hostname
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a DNS name other than localhost
        return False
