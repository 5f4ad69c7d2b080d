"""A persistent reply cache: one JSON file per request, written atomically.

The key is a SHA-256 of the request (model, messages, sampling parameters) and never of the
endpoint or the API key, so a rerun against another port of the same server, or after a kill,
costs no request for finished work. A file is either absent or complete
(``radinterp.config.write_json_atomic``), so a run killed mid-write leaves nothing half read.
Files hold the reply text and token counts only; requests (report text) are not copied.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from autointerp.clients.base import ChatReply
from radinterp.config import write_json_atomic

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def request_key(request: dict[str, Any]) -> str:
    """Stable hash of a request dict (sorted keys, exact floats)."""
    blob = json.dumps({"v": CACHE_VERSION, **request}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class ReplyCache:
    """``get(key)`` / ``put(key, reply)`` over ``root/<key[:2]>/<key>.json``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> ChatReply | None:
        p = self.path(key)
        try:
            d = json.loads(p.read_text())
            return ChatReply(text=d["text"], prompt_tokens=int(d["prompt_tokens"]),
                             completion_tokens=int(d["completion_tokens"]), cached=True)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:  # unreadable: ask again
            log.warning("ignoring unreadable cache file %s (%s); the request is repeated", p, e)
            return None

    def put(self, key: str, reply: ChatReply) -> None:
        write_json_atomic(self.path(key), {"text": reply.text, "prompt_tokens": reply.prompt_tokens,
                                           "completion_tokens": reply.completion_tokens})

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.exists() else 0
