"""Radiomic fingerprints (arXiv 2601.08604) adapted to 2-D radiographs; importing registers
``radiomics`` in :data:`eval.methods.base.METHODS`. See :mod:`eval.methods.radiomics.method`."""

from eval.methods.radiomics.features import ExtractSettings, extract_image, feature_names
from eval.methods.radiomics.method import RadiomicsMethod, RadiomicsOptions
from eval.methods.radiomics.parallel import extract_many

__all__ = ["ExtractSettings", "RadiomicsMethod", "RadiomicsOptions", "extract_image",
           "extract_many", "feature_names"]
