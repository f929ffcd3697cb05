#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Anything a crashed earlier run left behind must not disturb this one.
node bin/silobreak.js lab down --all >/dev/null 2>&1 || true
exec node scripts/run-tests.mjs all "$@"
