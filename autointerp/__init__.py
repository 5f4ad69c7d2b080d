"""LLM auto-interpretability: explain and score SAE features.

Latent records (the first stage): ``build_records(store, sae)`` makes one streaming pass over
an activation store through a saved SAE and keeps per latent its frequency, modality mix,
activation histogram, top and reservoir-sampled examples and per-study maxima
(``autointerp.records``); ``sample_latent`` draws quantile-spread activating examples and
random / hard negatives split by study into explanation and test sets
(``autointerp.sampling``); ``autointerp.context`` turns an example into what an explainer
reads: marked sentences, a heatmap over the radiograph, a region phrase, the study's labels.
"""

from autointerp.records import Example, LatentRecords, RecordsConfig, build_records
from autointerp.sampling import LatentSample, SampleConfig, sample_latent, sample_latents

__all__ = ["Example", "LatentRecords", "LatentSample", "RecordsConfig", "SampleConfig",
           "build_records", "sample_latent", "sample_latents"]
