"""Reference interpretability methods on the same images as the SAE: CSR concept prototypes,
INSIGHT heatmaps, radiomic fingerprints (issue 17). See docs/methods.md.

The frame: :mod:`.base` (registry, run config, context, ``run_method``), :mod:`.splits`,
:mod:`.patch_features`, :mod:`.masks`, :mod:`.localisation`, :mod:`.io`, :mod:`.cli`.
"""

from eval.methods.base import (
    METHODS,
    MethodContext,
    MethodOptions,
    MethodRunConfig,
    ReferenceMethod,
    load_methods,
    run_method,
)

__all__ = ["METHODS", "MethodContext", "MethodOptions", "MethodRunConfig", "ReferenceMethod",
           "load_methods", "run_method"]
