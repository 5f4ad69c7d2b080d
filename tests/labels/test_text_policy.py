"""Sentence splitting (spans into the original text) and the positive-label policy."""

from __future__ import annotations

import pytest

from radinterp.labels import (
    PATHOLOGIES,
    finalize_labels,
    is_positive,
    label_report,
    positive_labels,
    sentence_spans,
    split_sentences,
)


def test_sentences_and_their_spans():
    text = ("FINDINGS: Small right effusion, approx. 2.5 cm; no pneumothorax.\n"
            "IMPRESSION:  Heart size normal.Lungs clear?  Dr. Smith was called!")
    spans = sentence_spans(text)
    assert [text[a:b] for a, b in spans] == split_sentences(text) == [
        "Small right effusion, approx. 2.5 cm;",
        "no pneumothorax.",
        "Heart size normal",
        "Lungs clear?",
        "Dr. Smith was called!",
    ]
    assert all(0 <= a < b <= len(text) for a, b in spans)
    assert split_sentences("") == [] and split_sentences("  3.  \n ... ") == []


@pytest.mark.parametrize("value,positive", [(1, True), (-1, True), (0, False), (None, False)])
def test_positive_policy(value, positive):
    labels = {} if value is None else {"Edema": value}
    assert is_positive(labels, "Edema") is positive
    assert positive_labels({**labels, "Fracture": 0, "Pneumothorax": 1}) == (
        ["Edema", "Pneumothorax"] if positive else ["Pneumothorax"])


def test_policy_decides_no_finding():
    # an uncertain pathology rules out "No Finding", a negated one does not
    assert "No Finding" not in finalize_labels({"Pneumonia": -1})
    assert finalize_labels({"Pneumonia": 0})["No Finding"] == 1
    assert set(PATHOLOGIES) >= {"Pneumonia", "Edema"} and "Support Devices" not in PATHOLOGIES
    assert positive_labels(label_report("Possible right lower lobe pneumonia.")) == ["Pneumonia"]
