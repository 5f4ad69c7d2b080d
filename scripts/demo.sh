#!/usr/bin/env bash
# Set everything up, then run the end-to-end demo on the embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
radinterp demo "$@"
