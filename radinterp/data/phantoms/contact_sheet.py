"""Contact sheet: phantom films, the same films with finding masks overlaid, and their
reports, so a reader can judge at a glance whether they look like chest radiographs.

    python -m radinterp.data.phantoms.contact_sheet --out docs/phantoms_contact_sheet.png
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from radinterp.data.phantoms.config import PhantomConfig
from radinterp.data.phantoms.writer import generate_phantoms, read_records

log = logging.getLogger(__name__)

COLOURS = {
    "cardiomegaly": (255, 80, 80), "pleural_effusion": (60, 140, 255),
    "pneumothorax": (255, 220, 0), "consolidation": (255, 140, 0),
    "lung_nodule": (255, 0, 255), "edema": (0, 220, 220), "atelectasis": (140, 255, 60),
    "rib_fracture": (255, 255, 255), "pacemaker": (0, 255, 120),
    "endotracheal_tube": (0, 255, 120), "nasogastric_tube": (0, 200, 255),
    "central_venous_catheter": (200, 120, 255), "sternotomy_wires": (0, 255, 120),
}  # fmt: skip


def _overlay(img: np.ndarray, masks: dict[str, str]) -> Image.Image:
    rgb = np.repeat(img[..., None], 3, axis=2).astype(np.float32)  # (S, S, 3)
    for name, path in masks.items():
        m = np.asarray(Image.open(path)) > 0
        c = np.array(COLOURS.get(name, (255, 0, 0)), dtype=np.float32)
        rgb[m] = 0.55 * rgb[m] + 0.45 * c
        edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
        rgb[edge] = c
    return Image.fromarray(rgb.clip(0, 255).astype(np.uint8))


def pick_diverse(recs: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """Greedy pick covering as many finding kinds as possible, plus a normal and a prior."""
    chosen: list[dict[str, Any]] = []
    seen: set[str] = set()
    normal = next((r for r in recs if not r["findings"]), None)
    prior = next((r for r in recs if r["prior_image"] and r["findings"]), None)
    for r in (normal, prior):
        if r is not None and r not in chosen:
            chosen.append(r)
            seen |= set(r["findings"])
    while len(chosen) < k:
        rest = [r for r in recs if r not in chosen]
        best = max(rest, key=lambda r: (len(set(r["findings"]) - seen), -len(r["findings"])),
                   default=None)
        if best is None:
            break
        chosen.append(best)
        seen |= set(best["findings"])
    return chosen


def contact_sheet(
    dataset_dir: str | Path, out_png: str | Path, k: int = 8, cell: int = 256, text_w: int = 430
) -> Path:
    """Render ``k`` studies of a phantom folder as a PNG contact sheet."""
    recs = pick_diverse(read_records(dataset_dir), k)
    font = ImageFont.load_default(size=13)
    row_h = cell + 8
    width, height = 2 * (2 * cell + text_w), row_h * ((len(recs) + 1) // 2)
    sheet = Image.new("RGB", (width, height), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    for i, r in enumerate(recs):
        x0, y0 = (i % 2) * (2 * cell + text_w), (i // 2) * row_h
        img = np.asarray(Image.open(r["image"]).convert("L"))
        sheet.paste(Image.fromarray(img).resize((cell, cell)), (x0, y0))
        sheet.paste(_overlay(img, r["masks"]).resize((cell, cell)), (x0 + cell, y0))
        head = f"{r['study_id']}  {r['view']}  " + (", ".join(r["findings"]) or "normal")
        if r["prior_image"]:
            changes = ", ".join(f"{k}:{v}" for k, v in r["changes"].items())
            head += f"  [prior: {changes or 'no change'}]"
        lines = textwrap.wrap(head, 62) + [""]
        lines += textwrap.wrap("FINDINGS: " + r["report"], 62)
        lines += textwrap.wrap("IMPRESSION: " + r["impression"], 62)
        ty = y0 + 4
        for j, line in enumerate(lines[: (cell - 8) // 15]):
            colour = (255, 230, 120) if j < 2 else (230, 230, 230)
            draw.text((x0 + 2 * cell + 8, ty), line, fill=colour, font=font)
            ty += 15
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/phantoms_contact_sheet.png")
    ap.add_argument("--k", type=int, default=8, help="Studies on the sheet.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = PhantomConfig(n=80, seed=args.seed, size=args.size, prior_fraction=0.4)
        generate_phantoms(cfg, tmp, progress=False)
        path = contact_sheet(tmp, args.out, k=args.k)
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
