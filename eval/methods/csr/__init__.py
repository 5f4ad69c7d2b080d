"""CSR, concept-based similarity reasoning (arXiv 2503.06873), on the model's patch features.

Importing this package registers ``csr`` in :data:`eval.methods.METHODS`. Layers:
:mod:`.config` (options), :mod:`.model` (modules), :mod:`.train` (three stages on tensors),
:mod:`.interact` (the paper's interactions and the simulated doctor), :mod:`.evaluate` and
:mod:`.measure` (metrics, variants, baselines), :mod:`.tasks` (task labels), :mod:`.method`
(the frame's entry). See docs/methods.md.
"""

from eval.methods.csr.config import CSRConfig
from eval.methods.csr.interact import (
    Box,
    box_weights,
    prune_prototypes,
    refine_atlas,
    reject_concepts,
)
from eval.methods.csr.method import CSR, load_csr, run_csr
from eval.methods.csr.model import CSRModel, concept_maps, prototype_scores, reweight_maps
from eval.methods.csr.train import CSRSplit, multi_prototype_contrastive_loss, train_csr

__all__ = ["CSR", "Box", "CSRConfig", "CSRModel", "CSRSplit", "box_weights", "concept_maps",
           "load_csr", "multi_prototype_contrastive_loss", "prototype_scores", "prune_prototypes",
           "refine_atlas", "reject_concepts", "reweight_maps", "run_csr", "train_csr"]
