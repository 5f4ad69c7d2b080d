"""Throughput of ``radinterp autointerp`` with an LLM against a real local server, beside the
server's own speed-up for the same requests.

    transformers serve SMOLLM2_DIR:SMOLLM2_GGUF --host 127.0.0.1 --port 8765   # or any server
    python benchmarks/bench_autointerp_throughput.py --sae SAE --acts ACTS --top 8 \\
        --base-url http://127.0.0.1:8765/v1 --model MODEL --max-tokens 16 --json out.json

For each concurrency in ``--concurrency`` (default 1 and 8), in one run against one server:

- ours: ``run_autointerp`` on the ``--top`` most frequent latents with the ``llm`` explainer
  and the ``detection`` judge, no random baseline, into a fresh folder (empty reply cache), so
  every request goes to the server; features explained and scored per minute;
- raw: the very requests that run sent (recorded from the ``openai`` client), sent again with
  the ``openai`` package alone (``AsyncOpenAI``, a semaphore of the same concurrency, no
  pipeline, no cache) all at once; requests per minute.

It prints both speed-ups (highest concurrency over 1) and their ratio: ours / raw, the share
of the server's own concurrency gain the pipeline keeps (target >= 0.8). Our pipeline cannot
send a latent's judge request before its explanation is parsed; raw has no such order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
import time
from pathlib import Path

log = logging.getLogger("bench_autointerp_throughput")


def run_ours(args, concurrency: int, out: Path) -> tuple[float, list[dict], dict]:
    """Seconds of one pipeline run, the requests it sent, and its summary."""
    from autointerp.clients.openai_client import OpenAIClient
    from autointerp.config import AutointerpConfig
    from autointerp.pipeline import run_autointerp

    sent: list[dict] = []
    original = OpenAIClient.request

    def recording(self, *a, **kw):
        req = original(self, *a, **kw)
        sent.append(req)
        return req

    cfg = AutointerpConfig(sae=args.sae, acts=args.acts, out=str(out), top=args.top,
                           explainers=["llm"], scorers=["detection"], baseline=False,
                           client="openai", base_url=args.base_url, model=args.model,
                           concurrency=concurrency, max_tokens=args.max_tokens, progress=False)
    OpenAIClient.request = recording
    try:
        t0 = time.perf_counter()
        summary = run_autointerp(cfg)
        seconds = time.perf_counter() - t0
    finally:
        OpenAIClient.request = original
    return seconds, sent, summary


async def run_raw(args, requests: list[dict], concurrency: int) -> float:
    """Seconds to send ``requests`` with the openai package alone, ``concurrency`` at once."""
    import openai

    client = openai.AsyncOpenAI(base_url=args.base_url, api_key="EMPTY", max_retries=3)
    sem = asyncio.Semaphore(concurrency)

    async def one(req: dict) -> None:
        async with sem:
            await client.chat.completions.create(**req)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(r) for r in requests))
    seconds = time.perf_counter() - t0
    await client.close()
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sae", required=True)
    p.add_argument("--acts", required=True)
    p.add_argument("--top", type=int, default=8, help="latents explained and scored")
    p.add_argument("--base-url", required=True, help="a loopback OpenAI-compatible server")
    p.add_argument("--model", required=True)
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--concurrency", default="1,8")
    p.add_argument("--json", default=None, help="write the numbers here")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    levels = [int(c) for c in args.concurrency.split(",")]
    res: dict = {"top": args.top, "max_tokens": args.max_tokens, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for c in levels:
            secs, sent, summary = run_ours(args, c, Path(tmp) / f"ours-{c}")
            raw = asyncio.run(run_raw(args, sent, c))
            res["runs"][c] = {
                "ours_s": secs, "ours_features_per_min": 60 * args.top / secs,
                "requests": len(sent), "raw_s": raw, "raw_requests_per_min": 60 * len(sent) / raw,
                "ours_requests_per_min": 60 * len(sent) / secs, "llm": summary.get("llm")}
            print(f"concurrency {c}: ours {secs:.1f} s ({60 * args.top / secs:.2f} features/min, "
                  f"{len(sent)} requests); raw {raw:.1f} s for the same requests")
    lo, hi = res["runs"][levels[0]], res["runs"][levels[-1]]
    ours_up = lo["ours_s"] / hi["ours_s"]
    raw_up = (lo["raw_s"] / lo["requests"]) / (hi["raw_s"] / hi["requests"])
    res.update(ours_speedup=ours_up, raw_speedup=raw_up, ratio=ours_up / raw_up)
    print(f"speed-up {levels[-1]} vs {levels[0]}: ours {ours_up:.2f}x, server alone "
          f"{raw_up:.2f}x, ratio {ours_up / raw_up:.2f} (target >= 0.8)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
