"""``planted``: on phantom data, does the explanation name the planted finding the latent
best separates?

The finding is selected on the explanation split's studies (``sampling.in_test`` false): the
planted finding (``StudyEvidence.findings``) with the highest AUROC of the latent's per-study
maximum (``LatentRecords.study_max``) for carrying it. Its AUROC is then measured on the test
split's studies alone (``auroc_test``), so selection and measurement share no study. The
score is 1 when the explanation text names the finding (its label, ``finding_label``, or a
synonym: the finding's name in words), case-insensitive, else 0.
"""

from __future__ import annotations

import numpy as np

from autointerp.sampling import in_test
from autointerp.scorers.base import SCORERS, Score, ScoreContext, Scorer
from radinterp.metrics import auroc


def finding_names_in(finding: str) -> list[str]:
    """Lower-case names that count as naming phantom ``finding``."""
    from radinterp.data.phantoms import finding_label

    return sorted({finding_label(finding).lower(), finding.replace("_", " ").lower()})


def split_masks(ctx: ScoreContext) -> tuple[np.ndarray, np.ndarray]:
    """(n_studies,) bool masks of the explanation and the test split's studies."""
    cfg = ctx.sample_cfg
    test = np.array([in_test(s, cfg.seed, cfg.test_fraction) for s in ctx.records.study_ids])
    return ~test, test


@SCORERS.register("planted")
class PlantedScorer(Scorer):
    """See the module docstring."""

    name = "planted"

    def prepare(self, ctx: ScoreContext) -> None:
        ids = ctx.records.study_ids
        self.findings = sorted({f for s in ids if s in ctx.evidence
                                for f in ctx.evidence[s].findings})
        if not self.findings:
            raise ValueError("the planted scorer needs phantom studies with planted findings "
                             "(Study.meta['findings']); drop 'planted' from --scorers on other "
                             "data")
        self.carries = np.array([[f in ctx.evidence[s].findings if s in ctx.evidence else False
                                  for f in self.findings] for s in ids])  # (n_studies, F)
        self.select_mask, self.test_mask = split_masks(ctx)

    def latent_details(self, sample, ctx: ScoreContext) -> dict | None:
        """The finding the latent best separates on the explanation split and its AUROCs."""
        x = ctx.records.study_max[:, sample.latent].float().numpy()  # (n_studies,)
        best, best_auc = None, -1.0
        for j, f in enumerate(self.findings):
            y = self.carries[self.select_mask, j]
            if 0 < y.sum() < len(y):
                a = auroc(y, x[self.select_mask])
                if a > best_auc:
                    best, best_auc = f, a
        if best is None:
            return None
        y = self.carries[self.test_mask, self.findings.index(best)]
        auc_test = auroc(y, x[self.test_mask]) if 0 < y.sum() < len(y) else float("nan")
        return {"finding": best, "auroc_select": float(best_auc), "auroc_test": float(auc_test)}

    def score(self, explanation, sample, ctx: ScoreContext) -> Score:
        details = self.latent_details(sample, ctx)
        if details is None:
            return Score(sample.latent, self.name, None, error="no planted finding varies on "
                         "the explanation split")
        text = explanation.text.lower()
        named = any(n in text for n in finding_names_in(details["finding"]))
        return Score(sample.latent, self.name, float(named), {**details, "named": named})


__all__ = ["PlantedScorer", "finding_names_in", "split_masks"]
