#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build, run and test the product.
# Quick and silent when everything is already there, so the run and test commands call it.
#   scripts/setup.sh            everything (build, run, tests)
#   scripts/setup.sh --runtime  only what building and running need
set -euo pipefail
cd "$(dirname "$0")/.."

runtime_only=false
[ "${1:-}" = "--runtime" ] && runtime_only=true

packages=()
command -v pkg-config >/dev/null 2>&1 || packages+=(pkg-config)
pkg-config --exists opus 2>/dev/null || packages+=(libopus-dev)
if ! $runtime_only; then
  [ -x /usr/bin/chromium ] || packages+=(chromium)
  # scripts/n8n.sh (the real-n8n test) builds n8n's native modules with node-gyp.
  for tool in python3 make g++; do
    command -v "$tool" >/dev/null 2>&1 || packages+=("$tool")
  done
  # The README's server API example (tests/server_api_clients.rs) runs curl and openssl.
  for tool in curl openssl; do
    command -v "$tool" >/dev/null 2>&1 || packages+=("$tool")
  done
  # LiveKit's Python SDK (the dev server's client tests) lives in a venv.
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || packages+=(python3-venv)
  # The noisy-room suite's speech (tests/support/noise.rs): recordings and a Hindi voice.
  [ -f /usr/share/asterisk/sounds/en_US_f_Allison/conf-getpin.wav ] || packages+=(asterisk-core-sounds-en-wav)
  [ -f /usr/share/codec2/wav/hts1a.wav ] || packages+=(codec2-examples)
  [ -f /usr/share/sounds/alsa/Front_Center.wav ] || packages+=(alsa-utils)
  command -v espeak-ng >/dev/null 2>&1 || packages+=(espeak-ng)
  # The shared-state tests (tests/shared_redis.rs) start their own Redis.
  [ -x /usr/bin/redis-server ] || packages+=(redis-server)
  # The metrics test (tests/metrics_prometheus.rs) scrapes the worker and token server with it.
  command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || packages+=(prometheus)
fi
if [ ${#packages[@]} -gt 0 ]; then
  echo "setup: installing ${packages[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# npm ci only when node_modules is missing or older than the lockfile.
npm_ci() {
  local dir=$1
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "setup: npm ci in $dir" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
# A venv with pinned Python packages, rebuilt only when its requirements change. Wheels only:
# LiveKit's SDK wheel carries LiveKit's native library, so nothing is fetched from anywhere else.
python_venv() {
  local dir=$1 what=$2
  local venv=$dir/.venv
  if [ ! -x "$venv/bin/python" ] || ! cmp -s "$dir/requirements.txt" "$venv/requirements.installed"; then
    echo "setup: installing $what into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: -r "$dir/requirements.txt"
    cp "$dir/requirements.txt" "$venv/requirements.installed"
  fi
}

# PyPI's docker-compose, which checks docker-compose.yml without a Docker daemon (tests/compose.rs).
# Its PyYAML 5 builds from source, and only with Cython before 3; hence the constraint file.
compose_venv() {
  local dir=$1
  local venv=$dir/.venv
  if [ ! -x "$venv/bin/docker-compose" ] || ! cmp -s "$dir/requirements.txt" "$venv/requirements.installed"; then
    echo "setup: installing docker-compose into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    PIP_CONSTRAINT="$dir/constraints.txt" "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$dir/requirements.txt"
    cp "$dir/requirements.txt" "$venv/requirements.installed"
  fi
}

npm_ci web
if ! $runtime_only; then
  npm_ci tests/browser
  # LiveKit's Node SDK; its native library comes in a platform package from npm.
  npm_ci tests/sdk/node
  python_venv tests/sdk/python "LiveKit's Python SDK"
  # The providers' official SDKs, which check the requests our providers send.
  python_venv tests/contracts "the providers' Python SDKs"
  compose_venv tests/compose
fi
