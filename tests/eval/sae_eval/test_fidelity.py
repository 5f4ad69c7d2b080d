"""Fidelity splicing: the fast suffix path equals full edited forwards; the one-token
zero-ablation equals zero-ablating every position."""

from __future__ import annotations

import pytest
import torch

from eval.sae_eval.fidelity import measure_fidelity


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    from radinterp.data.phantoms import PhantomConfig, generate_phantoms, load_phantom_studies

    out = generate_phantoms(PhantomConfig(n=3, seed=2, size=112, prior_fraction=0.0),
                            tmp_path_factory.mktemp("fid") / "ph", progress=False)
    return load_phantom_studies(out)


@pytest.mark.parametrize("site", ["lm.blocks.0.resid_post"])  # layer 1 runs in the suffix
def test_suffix_equals_edit_and_zero_ablation_is_exact(tiny_adapter, studies, site) -> None:
    g = torch.Generator().manual_seed(0)
    P = torch.randn(tiny_adapter.d_model, tiny_adapter.d_model, generator=g) * 0.2
    variants = {"sae": lambda h: h + h @ P, "zero_full": torch.zeros_like}
    fast = measure_fidelity(tiny_adapter, site, studies, variants, batch_size=2, method="suffix", progress=False)
    slow = measure_fidelity(tiny_adapter, site, studies, variants, batch_size=3, method="edit", progress=False)
    assert fast["method"] == "suffix" and slow["method"] == "edit" and fast["report_tokens"] > 20
    for key in ("ce_loss", "kl"):
        for name, v in slow[key].items():
            assert fast[key][name] == pytest.approx(v, rel=1e-4, abs=1e-6), (key, name)
    assert fast["ce_loss"]["sae"] != pytest.approx(fast["ce_loss"]["clean"], rel=1e-6)
    # zero-ablating every position of the full sequence = the one-token zero-ablation
    assert slow["ce_loss"]["zero_full"] == pytest.approx(slow["ce_loss"]["zero_ablation"], rel=1e-4)
    assert slow["kl"]["zero_full"] == pytest.approx(slow["kl"]["zero_ablation"], rel=1e-4)
    assert fast["ce_loss_score"]["zero_full"] == pytest.approx(0.0, abs=1e-3)


def test_studies_without_reports_are_refused(tiny_adapter, studies) -> None:
    import dataclasses

    bare = [dataclasses.replace(s, report="") for s in studies]
    with pytest.raises(ValueError, match="no study with report text"):
        measure_fidelity(tiny_adapter, "lm.blocks.1.resid_post", bare, {}, progress=False)
