"""next-sentence: sample what the model writes next after a given start of its answer."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from eval.next_sentence import (
    END,
    NextSentenceConfig,
    answer_inputs,
    first_sentence,
    register,
    run,
    sample_next_sentences,
    summarize,
)
from radinterp.data.phantoms import PhantomConfig, generate_phantoms, load_phantom_studies
from radinterp.models import load_adapter

PREFIX = "No pulmonary edema. The heart is not enlarged."


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    out = tmp_path_factory.mktemp("ns_phantoms")
    generate_phantoms(PhantomConfig(n=3, seed=11, size=224, prior_fraction=0.0), out, progress=False)
    return out


@pytest.fixture(scope="module")
def demo():
    return load_adapter("demo")


def test_first_sentence_and_summary_use_the_labeler():
    assert first_sentence("  Moderate left pneumothorax. No effusion.") == "Moderate left pneumothorax."
    assert first_sentence("") == END
    samples = ["Moderate right pneumothorax is present.", "No evidence of pneumothorax.", END,
               "Severe cardiomegaly.", "A small left pneumothorax cannot be excluded."]
    s = summarize(samples, ["Pneumothorax", "Cardiomegaly", "Edema"])
    assert s["n"] == 5 and s["ends_report"] == pytest.approx(0.2)
    # hedged counts as stated (as eval-reports scores it); a negation does not
    assert s["states"] == pytest.approx({"Pneumothorax": 0.4, "Cardiomegaly": 0.2, "Edema": 0.0})
    assert summarize(samples)["states"].keys() == {"Pneumothorax", "Cardiomegaly"}


def test_answer_inputs_end_with_the_prefix(demo, phantoms):
    study = load_phantom_studies(phantoms)[0]
    inputs = answer_inputs(demo, study, PREFIX)
    assert demo.tokenizer.decode(inputs.input_ids).endswith(PREFIX)  # no end-of-sequence after it
    assert len(inputs.layout) == len(inputs.input_ids)
    full = demo.build_inputs(study)  # generation prompt: the answer starts empty
    assert torch.equal(inputs.input_ids[: len(full.input_ids)], full.input_ids)
    assert torch.equal(answer_inputs(demo, study, "  ").input_ids, full.input_ids)


def test_sampling_is_seeded_and_labelled(demo, phantoms, monkeypatch):
    import eval.next_sentence as ns

    monkeypatch.setattr(ns, "CHUNK", 4)  # 6 samples in two generate calls
    study = load_phantom_studies(phantoms)[1]
    a = sample_next_sentences(demo, study, PREFIX, 6, seed=3, max_new_tokens=24)
    b = sample_next_sentences(demo, study, PREFIX, 6, seed=3, max_new_tokens=24)
    assert a == b and len(a) == 6 and all(s for s in a)
    # temperature -> 0 is greedy: every sample is the sentence greedy decoding writes
    cold = sample_next_sentences(demo, study, PREFIX, 3, temperature=1e-4, seed=1, max_new_tokens=24)
    greedy = demo.model.generate(**demo.to_device(demo.collate([answer_inputs(demo, study, PREFIX)])),
                                 do_sample=False, max_new_tokens=24,
                                 pad_token_id=demo.tokenizer.eos_token_id)
    text = demo.tokenizer.decode(greedy[0, len(answer_inputs(demo, study, PREFIX).input_ids):],
                                 skip_special_tokens=True)
    assert cold == [first_sentence(text)] * 3


def test_cli_json_and_bad_input(demo, phantoms):
    app = typer.Typer()
    register(app)

    @app.command("noop")  # a second command, so typer keeps the subcommand name
    def noop() -> None: ...

    sid = load_phantom_studies(phantoms)[2].study_id
    res = CliRunner().invoke(app, ["next-sentence", "--data", str(phantoms), "--study", sid, "--n", "3",
                                   "--prefix", PREFIX, "--finding", "Pneumothorax",
                                   "--indication", "Fall, rib pain.", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    assert out["n"] == 3 and set(out["states"]) == {"Pneumothorax"}
    assert out["indication"] == "Fall, rib pain." and out["prefix"] == PREFIX
    with pytest.raises(ValueError, match="its ids look like: ph0011-000000"):
        run(NextSentenceConfig(data=str(phantoms), study="nope", n=2), adapter=demo)
    for bad, match in [(dict(n=0), "n must be"), (dict(temperature=0.0), "temperature"),
                       (dict(study=""), "study id")]:
        with pytest.raises(ValueError, match=match):
            NextSentenceConfig(**{"data": "d", "study": "s", **bad})
