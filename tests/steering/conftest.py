"""Shared fixtures: the demo model, a few phantoms, a store of some of them at layers 14 and 15
(several-layer steering), and a random SAE at layer 15 (steering's mechanics do not need a
trained one)."""

from __future__ import annotations

import pytest
import torch

SITE = "lm.blocks.15.resid_post"
SITE14 = "lm.blocks.14.resid_post"
N_PHANTOMS, N_STORE = 12, 8


@pytest.fixture(scope="session")
def demo():
    from radinterp.models import load_adapter

    return load_adapter("demo")


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory):
    from radinterp.data.phantoms import PhantomConfig, generate_phantoms

    return generate_phantoms(PhantomConfig(n=N_PHANTOMS, seed=7, size=224, prior_fraction=0.5),
                             tmp_path_factory.mktemp("steer") / "ph", progress=False)


@pytest.fixture(scope="session")
def studies(phantom_dir):
    from radinterp.data.phantoms import load_phantom_studies

    return load_phantom_studies(phantom_dir)


@pytest.fixture(scope="session")
def store_dir(demo, phantom_dir, tmp_path_factory):
    from radinterp.capture import CaptureConfig, run_capture

    out = tmp_path_factory.mktemp("steer") / "acts"
    run_capture(CaptureConfig(model="demo", data=str(phantom_dir), out=str(out), sites=[SITE14, SITE],
                              dtype="float32", max_studies=N_STORE, token_filter="all", progress=False), adapter=demo)
    return out


def make_sae(d_in: int = 576, d_sae: int = 64, site: str = SITE, seed: int = 0):
    from radinterp.sae import SAEConfig, SparseAutoencoder

    g = torch.Generator().manual_seed(seed)
    sae = SparseAutoencoder(SAEConfig(d_in=d_in, d_sae=d_sae, k=4, site=site))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, d_sae, generator=g) / d_in ** 0.5)
        sae.W_dec.copy_(torch.randn(d_sae, d_in, generator=g) / d_in ** 0.5)
        sae.b_enc.fill_(-0.5)
    return sae


@pytest.fixture(scope="session")
def sae_dir(tmp_path_factory):
    from radinterp.sae import save_sae

    return save_sae(make_sae(), tmp_path_factory.mktemp("steer") / "sae")


@pytest.fixture(scope="session")
def sae(sae_dir):
    from radinterp.sae import load_sae

    return load_sae(sae_dir)
