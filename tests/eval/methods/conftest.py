"""Shared fixtures of the reference-method tests: a small phantom folder and the tiny model."""

from __future__ import annotations

import pytest

N_PHANTOMS = 30


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory):
    from radinterp.data.phantoms import PhantomConfig, generate_phantoms

    root = tmp_path_factory.mktemp("methods_phantoms")
    generate_phantoms(PhantomConfig(n=N_PHANTOMS, seed=5, size=112, normal_fraction=0.2), root,
                      progress=False)
    return root
