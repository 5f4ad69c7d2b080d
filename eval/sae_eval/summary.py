"""A few lines summarising ``metrics.json`` (the CLI prints them; docs quote them)."""

from __future__ import annotations

from typing import Any


def _f(x: Any) -> str:
    return "-" if x is None else f"{x:.4f}"


def summary_lines(m: dict[str, Any]) -> list[str]:
    t, r = m["reconstruction"]["trained"], m["reconstruction"]["random"]
    lines = [f"{m['rows']['n']} rows ({m['rows']['mode']}) at {m['site']}: trained vs random SAE"]
    for key in ("explained_variance", "mse", "cosine", "l2_ratio", "l0"):
        lines.append(f"  {key:<19} {_f(t['overall'][key])}  vs {_f(r['overall'][key])}")
    for kind, d in t["by_kind"].items():
        lines.append(f"  EV {kind:<16} {_f(d['explained_variance'])}  vs "
                     f"{_f(r['by_kind'][kind]['explained_variance'])} ({d['rows']} rows)")
    pre = t["overall"]["explained_variance_prefix"]
    lines.append("  EV per prefix      " + ", ".join(f"{w}: {_f(v)}" for w, v in sorted(pre.items(), key=lambda kv: int(kv[0]))))
    lines.append(f"  dead {t['firing']['dead']} / dense {t['firing']['dense']} of {t['firing']['d_sae']}"
                 f" (random: {r['firing']['dead']} / {r['firing']['dense']})")
    cal = m.get("calibration")
    if cal:
        lines.append(f"  training reported EV {_f(cal['jumprelu']['explained_variance'])} on "
                     f"{cal['held_out_tokens']} held-out rows")
    fid = m.get("fidelity")
    if fid:
        ce = fid["ce_loss"]
        lines.append(f"  CE loss on {fid['report_tokens']} report tokens: clean {_f(ce['clean'])}, SAE "
                     f"{_f(ce['sae'])}, zero-ablation {_f(ce['zero_ablation'])}"
                     + (f", random {_f(ce['random'])}" if "random" in ce else ""))
        lines.append(f"  CE-loss score SAE {_f(fid['ce_loss_score']['sae'])} (random "
                     f"{_f(fid['ce_loss_score'].get('random'))}); KL score SAE "
                     f"{_f(fid['kl_score']['sae'])} (random {_f(fid['kl_score'].get('random'))})")
    con = m.get("concepts")
    if con and con.get("mean"):
        for enc, d in con["mean"].items():
            lines.append(f"  probing {enc:<8} AUROC k=1/2/5 {_f(d['auroc_k1'])}/{_f(d['auroc_k2'])}/"
                         f"{_f(d['auroc_k5'])}; labels split over >1 latent: {d['labels_split']}"
                         f" of {len(con['labels'])}")
    return lines
