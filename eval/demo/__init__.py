"""``radinterp demo``: the whole pipeline end to end on the embedded defaults.

phantoms (held-out seed) -> capture (demo model, image and report tokens; and the phantoms'
healthy twins) -> Matryoshka BatchTopK SAE -> report quality -> planted-finding recovery ->
SAE eval (fidelity beside a random SAE) -> autointerp (enrichment explainer on every latent;
the local LLM on a few, opt-in) -> steering of one finding with its controls -> reference
methods (CSR, INSIGHT, radiomics) -> bridge -> feature browser. Every stage writes its own
folder under ``--out`` and is reused when complete; ``--data DIR`` runs on real radiographs and
skips what needs planted truth. Modules: :mod:`.config`, :mod:`.runner`, :mod:`.stages`,
:mod:`.analysis`, :mod:`.pipeline`, :mod:`.summary`, :mod:`.cli`.
"""

from eval.demo.config import PRESETS, STAGE_NAMES, DemoConfig
from eval.demo.pipeline import run_demo
from eval.demo.summary import format_summary, headline_rows
from eval.demo.cli import register

__all__ = ["PRESETS", "STAGE_NAMES", "DemoConfig", "format_summary", "headline_rows",
           "register", "run_demo"]
