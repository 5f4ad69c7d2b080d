"""``radinterp bridge --sae SAE --acts ACTS --methods DIR[,DIR...] --out OUT [--data DIR]
[--twins STORE]``."""

from __future__ import annotations

import json

import typer


def bridge_command(
    sae: str = typer.Option(..., "--sae", help="SAE folder."),
    acts: str = typer.Option(..., "--acts", help="Activation store the SAE reads."),
    out: str = typer.Option(..., "--out", help="Output folder."),
    methods: str = typer.Option("", "--methods", help="Method run folders, comma-separated."),
    data: str = typer.Option(None, "--data", help="Studies, if they moved since capture."),
    site: str = typer.Option(None, "--site", help="Store site; default: the SAE's."),
    twins: str = typer.Option(None, "--twins", help="Store of the phantoms' healthy twins "
                              "(counterfactual: feature on study vs twin)."),
    probe_l2: float = typer.Option(0.1, "--probe-l2", help="L2 penalty of the linear probe baseline."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, random SAE, permutations."),
    report_fraction: float = typer.Option(0.5, "--report-fraction",
                                          help="Share of the methods' test studies reported."),
    permutations: int = typer.Option(200, "--permutations", help="Permutations per target."),
    random_mode: str = typer.Option("threshold", "--random-mode", help="threshold or topk."),
    examples: int = typer.Option(4, "--examples", help="Example studies in bridge.html."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace another run in OUT."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
) -> None:
    """Which SAE features track which CSR concepts, INSIGHT heatmaps, radiomic features and
    findings, and whether they look at the same pixels."""
    from eval.bridges import BridgeConfig, run_bridge

    cfg = BridgeConfig(sae=sae, acts=acts, out=out, methods=methods.split(","), data=data, site=site,
                       twins=twins, probe_l2=probe_l2, seed=seed, report_fraction=report_fraction,
                       n_permutations=permutations, random_mode=random_mode, n_examples=examples,
                       progress=not no_progress)
    result = run_bridge(cfg, overwrite=overwrite)
    split = {k: v for k, v in result["split"].items() if k != "report_ids"}
    typer.echo(json.dumps({"out": out, "split": split}, indent=2))


def register(app: typer.Typer) -> None:
    from radinterp.cli import add_command

    add_command(app, "bridge", bridge_command)
