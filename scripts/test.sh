#!/usr/bin/env bash
# The test command: installs what is missing, then runs every test (unit, integration, browser).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo test --locked "$@"
