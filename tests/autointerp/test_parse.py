"""The reply parsers on replies real models give: SmolLM2-135M's (recorded in this repo's runs
against the demo model, see docs/autointerp.md), and the formats larger chat models use."""

from __future__ import annotations

import numpy as np
import pytest

from autointerp.parse import MAX_WORDS, UnparsableReply, parse_explanation, parse_verdicts
from radinterp.metrics import balanced_accuracy

PARSED = [
    ("[EXPLANATION]: left pleural effusion", "left pleural effusion"),
    ("The marked tokens all mention fluid.\n\n[EXPLANATION]: \"Left pleural effusion.\"",
     "Left pleural effusion"),
    ("**Explanation:** *right lower zone opacity*", "right lower zone opacity"),
    ("### Explanation\nCardiomegaly", "Cardiomegaly"),
    ("`[EXPLANATION]: Support devices`", "Support devices"),
    ("[explanation] - the word \"effusion\"", "the word \"effusion\""),
    ("Step 1: ...\n[EXPLANATION]: first guess\nOn reflection:\n[EXPLANATION]: pneumothorax",
     "pneumothorax"),
    ("Pneumothorax", "Pneumothorax"),  # one short unlabelled line
    # SmolLM2-135M, demo model latent 221's random partner: one line, taken as it is
    ("The feature that responds to the feature is a finding that is not a medical condition "
     "but rather a medical observation",
     "The feature that responds to the feature is a finding that is not a medical condition "
     "but rather a medical observation"),
]

FAILED = [
    "",
    "   \n ",
    "[EXPLANATION]: <the short phrase>",  # the template echoed
    "[EXPLANATION]:",
    "I'm sorry, I cannot help with medical images.",
    "The examples show fluid.\nThey are on the left.",  # no label, several lines
    # SmolLM2-135M, demo model latent 221: one line of 36 words, no label
    "The feature that responds to the feature is a finding that is not a characteristic of the "
    "feature itself but is a finding that is related to the feature. In this case, the feature "
    "is a finding that is related to the feature itself.",
]


@pytest.mark.parametrize("reply,want", PARSED)
def test_explanations_are_read_from_many_formats(reply, want):
    assert parse_explanation(reply) == want


@pytest.mark.parametrize("reply", FAILED)
def test_unreadable_replies_raise(reply):
    with pytest.raises(UnparsableReply):
        parse_explanation(reply)
    assert len(FAILED[-1].split()) > MAX_WORDS


@pytest.mark.parametrize("reply,n,want", [
    ("[1, 0, 1]", 3, [True, False, True]),
    ("1, 0, 1", 3, [True, False, True]),
    ("Study 1: yes\nStudy 2: no\n3. Yes", 3, [True, False, True]),
    ("The answer is [1, 1].", 2, [True, True]),
    ("Here: [1, 0, 0] - no wait: [0, 0, 1]", 3, [False, False, True]),  # the last full list
    ("\"Yes\"", 1, [True]),
    ("[1, 0]", 3, None),  # too few: never shifted onto the wrong examples
    ("[1, 0, 2]", 3, None),
    ("The feature is active in the first study.", 2, None),
    ("", 1, None),
])
def test_verdicts(reply, n, want):
    assert parse_verdicts(reply, n) == want


def test_balanced_accuracy():
    y = np.array([1, 1, 1, 1, 0, 0], bool)
    assert balanced_accuracy(y, y) == 1.0
    assert balanced_accuracy(y, np.ones(6, bool)) == 0.5  # always "active": chance
    assert balanced_accuracy(y, np.array([1, 1, 0, 0, 1, 0], bool)) == pytest.approx(0.5)
    assert balanced_accuracy(y[:4], y[:4]) is None  # one class only
