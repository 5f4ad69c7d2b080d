"""The model card (``README.md``) of a published SAE release.

A YAML metadata block (library, license, base model, tags), then per SAE: site, model, the
data and its licence note, the training config, the eval metrics beside the random SAE's, the
autointerp labels when present, and a snippet that loads it.
"""

from __future__ import annotations

import json
from typing import Any

from eval.publish.layout import SaeEntry

LIBRARY = {"sae_lens": "saelens", "dictionary_learning": "dictionary-learning"}


def _f(x: Any) -> str:
    return "-" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)


def _base_model(entries: list[SaeEntry]) -> str | None:
    models = {e.metrics.get("model") for e in entries}
    model = models.pop() if len(models) == 1 else None
    return model if model and "/" in model else None  # only Hub ids are base models


def metadata_block(entries: list[SaeEntry], layout: str, license: str) -> str:
    lines = ["---", f"library_name: {LIBRARY[layout]}", f"license: {license}"]
    base = _base_model(entries)
    if base:
        lines.append(f"base_model: {base}")
    lines += ["tags:", "- sparse-autoencoder", "- mechanistic-interpretability", "- radiology",
              "- radinterp", f"- {LIBRARY[layout]}", "---"]
    return "\n".join(lines)


def _load_snippet(repo_id: str, sae_id: str, layout: str) -> str:
    if layout == "sae_lens":
        return ("```python\nfrom sae_lens import SAE\n"
                f"sae = SAE.from_pretrained(\"{repo_id}\", \"{sae_id}\")\n"
                "# or: radinterp.sae.load_sae(folder) on a downloaded copy\n```")
    return ("```python\nfrom huggingface_hub import snapshot_download\nfrom radinterp.sae import load_sae\n"
            f"folder = snapshot_download(\"{repo_id}\", allow_patterns=[\"{sae_id}/*\"])\n"
            f"sae = load_sae(f\"{{folder}}/{sae_id}\")  # ae.pt + config.json (dictionary_learning)\n```")


def _metrics_table(m: dict[str, Any]) -> list[str]:
    t, r = m["reconstruction"]["trained"], m["reconstruction"]["random"]
    rows = ["| metric | this SAE | random SAE (same shape and L0) |", "|---|---|---|"]
    for key in ("explained_variance", "mse", "cosine", "l2_ratio", "l0"):
        rows.append(f"| {key} | {_f(t['overall'][key])} | {_f(r['overall'][key])} |")
    for kind, d in t["by_kind"].items():
        rows.append(f"| explained_variance ({kind} tokens) | {_f(d['explained_variance'])} | "
                    f"{_f(r['by_kind'][kind]['explained_variance'])} |")
    rows.append(f"| dead / dense (>10%) latents | {t['firing']['dead']} / {t['firing']['dense']} | "
                f"{r['firing']['dead']} / {r['firing']['dense']} |")
    fid = m.get("fidelity")
    if fid:
        rows.append(f"| CE-loss score (zero-ablation = 0, clean = 1) | {_f(fid['ce_loss_score']['sae'])} | "
                    f"{_f(fid['ce_loss_score'].get('random'))} |")
        rows.append(f"| KL score | {_f(fid['kl_score']['sae'])} | {_f(fid['kl_score'].get('random'))} |")
        ce = fid["ce_loss"]
        rows.append(f"| CE loss (clean {_f(ce['clean'])}, zero-ablation {_f(ce['zero_ablation'])}) | "
                    f"{_f(ce['sae'])} | {_f(ce.get('random'))} |")
    con = m.get("concepts") or {}
    for k in ("1", "2", "5"):
        mean = con.get("mean", {})
        if "trained" in mean:
            rows.append(f"| k-sparse probing AUROC, k={k} (held-out) | {_f(mean['trained'][f'auroc_k{k}'])}"
                        f" | {_f(mean['random'][f'auroc_k{k}'])} |")
    return rows


def sae_section(e: SaeEntry, repo_id: str, layout: str, data_note: str) -> list[str]:
    m = e.metrics
    out = [f"## `{e.sae_id}`", "",
           f"- site: `{m['site']}`; model: `{m['model']}`; d_in {m['d_in']}, d_sae {m['d_sae']}, "
           f"k {m['k']}, Matryoshka widths {m['widths']}",
           f"- data: {data_note}",
           f"- evaluated on {m['rows']['n']} activation rows ({m['rows']['mode']}: "
           f"{'rows training held out' if m['rows']['mode'] == 'held_out' else 'a store training did not read'}),"
           f" {m['rows']['studies']} studies", ""]
    if e.train_cfg:
        train = {k: v for k, v in e.train_cfg.get("train", {}).items() if v is not None}
        out += ["Training config:", "", "```json", json.dumps(train, indent=1), "```", ""]
    out += _metrics_table(m) + [""]
    if e.explanations:
        out += [f"Autointerp labels ({len(e.explanations)} rows, all in `{e.sae_id}/explanations.jsonl`):",
                "", "| latent | explainer | explanation |", "|---|---|---|"]
        for row in e.explanations[:20]:
            text = str(row.get("explanation", "")).replace("|", "/").replace("\n", " ")[:120]
            out.append(f"| {row.get('latent')} | {row.get('explainer', '')} | {text} |")
        out.append("")
    out += ["Load it:", "", _load_snippet(repo_id, e.sae_id, layout), ""]
    return out


def model_card(entries: list[SaeEntry], repo_id: str, layout: str, *, license: str,
               data_note: str) -> str:
    ids = ", ".join(f"`{e.sae_id}`" for e in entries)
    lines = [metadata_block(entries, layout, license), "",
             f"# {repo_id}", "",
             f"Sparse autoencoders ({ids}) trained with radinterp on a radiology multimodal LLM's "
             f"activations, in the {'SAELens' if layout == 'sae_lens' else 'dictionary_learning'} "
             f"layout. Every metric is shown beside a random SAE of the same shape and sparsity.", "",
             "Privacy and licence: the weights hold no report text or images, but they were fit on "
             "activations of the data below; its licence and use terms apply to derived work.", ""]
    for e in entries:
        lines += sae_section(e, repo_id, layout, data_note)
    return "\n".join(lines)


__all__ = ["metadata_block", "model_card"]
