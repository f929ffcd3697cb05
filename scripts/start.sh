#!/usr/bin/env bash
# The README's lab command: installs what the lab needs, then brings up hosts, demo VMs and the manager.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/silobreak.js lab up "$@"
