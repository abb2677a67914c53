#!/usr/bin/env bash
# The run command: installs what is missing, then starts the token server and its page.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --runtime
exec cargo run --release --locked --bin token-server -- "$@"
