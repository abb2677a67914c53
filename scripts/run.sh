#!/usr/bin/env bash
# The run command: installs what is missing, then runs the whole product on this machine
# (`agent-worker dev`: a LiveKit dev server, the token server and its page, and the worker).
# Open http://localhost:3000 and talk. With LIVEKIT_URL set, a real LiveKit server is used.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --runtime
exec cargo run --release --locked --bin agent-worker -- dev "$@"
