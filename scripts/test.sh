#!/usr/bin/env bash
# Set everything up, then run the whole test suite.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
export TOKENIZERS_PARALLELISM=false
python3 -m pytest -q -p no:cacheprovider "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests"
    exit 1
fi
exit "$rc"
