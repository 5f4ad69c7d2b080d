"""Capture overhead: tokens/s of capture-to-disk vs a bare forward of the same model and batches.

Three modes over the same studies and batches, interleaved batch by batch (the order rotates)
so that load from other processes hits all modes alike:

- ``bare_full``: build inputs + collate + full forward (no hooks), the plain-inference baseline;
- ``bare_stop``: the same, with hooks recording the sites and the forward stopped after the
  deepest one (the compute a capture cannot avoid);
- ``capture``: the capture runner's per-batch step (image checks, build inputs, forward,
  filter, append to a ``StoreWriter``) plus the writer's final close (last shard, fsync).

Wall-clock and process CPU time are summed per mode over ``--repeats`` passes; the ratios are
capture tokens/s over each baseline's. A final end-to-end ``run_capture`` pass is reported too.

CPU, demo model (target ratio >= 0.90)::

    python benchmarks/bench_capture.py --model demo --studies 24 --batch-size 4

GPU, MAIRA-2-sized random weights in bf16 (layer 15 as the SAE study)::

    python benchmarks/bench_capture.py --arch maira2 --site lm.blocks.15.resid_post \
        --studies 64 --batch-size 8 --device cuda
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from radinterp.capture import CaptureConfig, CaptureResult, run_capture  # noqa: E402
from radinterp.capture.runner import _capture_chunk, check_sites  # noqa: E402
from radinterp.data.sources import open_studies  # noqa: E402
from radinterp.hooks import capture  # noqa: E402
from radinterp.store import StoreWriter, make_manifest  # noqa: E402

REAL_CXR = next((p for p in (Path(__file__).resolve().parents[2] / "shared/data/real-cxr",
                             Path("/work/shared/data/real-cxr")) if p.is_dir()),
                Path("/work/shared/data/real-cxr"))


def build_maira2_scale(device: str, text_layers: int | None, image_size: int):
    """MAIRA-2's real shape (7B LM, 518 px, 1,369 tokens per image), random weights, bf16."""
    from radinterp.models.arch import Maira2LikeForConditionalGeneration, Maira2Scale, maira2_config
    from radinterp.models.image import ImagePreprocess
    from radinterp.models.maira2 import Maira2Adapter, tiny_tokenizer

    tok = tiny_tokenizer()
    extra = {"text_layers": text_layers} if text_layers else {}
    scale = Maira2Scale(**extra, image_size=image_size, vocab_size=len(tok),
                        image_token_id=tok.convert_tokens_to_ids("<image>"),
                        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                        eos_token_id=tok.eos_token_id)
    dtype = torch.bfloat16 if device != "cpu" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        prev = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            model = Maira2LikeForConditionalGeneration(maira2_config(scale)).eval()
        finally:
            torch.set_default_dtype(prev)
    return Maira2Adapter(model, tok, ImagePreprocess(size=image_size), scale.patch_size)


def chunks(studies, n):
    for k in range(0, len(studies), n):
        yield studies[k : k + n]


def _sync(adapter) -> None:
    if adapter.device.type == "cuda":
        torch.cuda.synchronize()


@torch.inference_mode()
def bare_batch(adapter, chunk, sites=None) -> int:
    batch = adapter.collate([adapter.build_inputs(s, with_report=bool(s.report)) for s in chunk])
    kw = adapter.to_device(batch)
    if sites:
        with capture(adapter, sites, stop_early=True):
            adapter.model(**kw)
    else:
        adapter.model(**kw)
    return int(sum(batch.lengths))


class Clock:
    """Summed wall and process-CPU seconds per mode."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def run(self, mode, adapter, fn):
        _sync(adapter)
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        _sync(adapter)
        self.wall[mode] = self.wall.get(mode, 0.0) + time.perf_counter() - w
        self.cpu[mode] = self.cpu.get(mode, 0.0) + time.process_time() - c
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo", help="adapter name (demo, tiny) unless --arch maira2")
    p.add_argument("--arch", choices=["adapter", "maira2"], default="adapter")
    p.add_argument("--text-layers", type=int, default=None, help="override LM depth (--arch maira2)")
    p.add_argument("--image-size", type=int, default=518, help="image side for --arch maira2")
    p.add_argument("--data", default=str(REAL_CXR))
    p.add_argument("--site", action="append", default=None)
    p.add_argument("--studies", type=int, default=24)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--dtype", default="bfloat16", help="stored dtype")
    p.add_argument("--token-filter", default="all")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.arch == "maira2":
        adapter = build_maira2_scale(args.device, args.text_layers, args.image_size)
        model_name = f"maira2-scale-random(layers={adapter.n_layers})"
    else:
        from radinterp.models import load_adapter

        adapter = load_adapter(args.model, device=args.device)
        model_name = args.model
    sites = args.site or [f"lm.blocks.{adapter.n_layers - 1}.resid_post"]
    studies = list(itertools.islice(open_studies(args.data), args.studies))
    out = Path(tempfile.mkdtemp(prefix="bench_capture_"))
    cfg = CaptureConfig(model=model_name, data=args.data, out=str(out / "acts"), sites=sites,
                        batch_size=args.batch_size, dtype=args.dtype, max_studies=args.studies,
                        token_filter=args.token_filter, device=args.device, progress=False)

    bare_batch(adapter, studies[: args.batch_size])  # warm-up
    d_model = check_sites(adapter, sites)
    manifest = make_manifest(model=model_name, sites=sites, dtype=args.dtype, d_model=d_model,
                             token_filter=args.token_filter, shard_bytes=cfg.shard_bytes)
    clock, tokens = Clock(), {"bare_full": 0, "bare_stop": 0, "capture": 0}
    modes = ["bare_full", "bare_stop", "capture"]
    for rep in range(args.repeats):
        root = out / f"rep{rep}"
        writer = StoreWriter(root, manifest)
        res = CaptureResult(root, 0, 1)
        for k, chunk in enumerate(chunks(studies, args.batch_size)):
            for mode in modes[k % 3:] + modes[: k % 3]:
                if mode == "capture":
                    before = res.tokens_forwarded
                    clock.run(mode, adapter, lambda: _capture_chunk(cfg, adapter, writer, chunk, res))
                    tokens[mode] += res.tokens_forwarded - before
                else:
                    tokens[mode] += clock.run(mode, adapter, lambda: bare_batch(
                        adapter, chunk, sites if mode == "bare_stop" else None))
        clock.run("capture", adapter, writer.close)
        print(f"  rep {rep}: " + ", ".join(f"{m} {clock.wall[m]:.1f}s" for m in modes), flush=True)
    assert len(set(tokens.values())) == 1, f"modes forwarded different token counts: {tokens}"
    n = tokens["capture"]
    e2e = run_capture(cfg, adapter=adapter, overwrite=True)
    result = {
        "model": model_name, "device": str(adapter.device), "threads": torch.get_num_threads(),
        "sites": sites, "studies": len(studies), "batch_size": args.batch_size,
        "repeats": args.repeats, "tokens_per_mode": n, "stored_dtype": args.dtype,
        "tok_per_s_wall": {m: round(n / clock.wall[m], 1) for m in modes},
        "tok_per_s_cpu": {m: round(n / clock.cpu[m], 1) for m in modes},
        "ratio_capture_vs_bare_full_wall": round(clock.wall["bare_full"] / clock.wall["capture"], 3),
        "ratio_capture_vs_bare_stop_wall": round(clock.wall["bare_stop"] / clock.wall["capture"], 3),
        "ratio_capture_vs_bare_full_cpu": round(clock.cpu["bare_full"] / clock.cpu["capture"], 3),
        "ratio_capture_vs_bare_stop_cpu": round(clock.cpu["bare_stop"] / clock.cpu["capture"], 3),
        "end_to_end_run_capture_tok_per_s": round(e2e.tokens_forwarded / e2e.seconds, 1),
        "store_bytes_per_pass": sum(f.stat().st_size for f in (out / "acts").rglob("*") if f.is_file()),
    }
    if torch.cuda.is_available() and adapter.device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name()
        result["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    shutil.rmtree(out)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
