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
  # The noisy-room suite's speech (tests/support/noise.rs): recordings and a Hindi voice.
  [ -f /usr/share/asterisk/sounds/en_US_f_Allison/conf-getpin.wav ] || packages+=(asterisk-core-sounds-en-wav)
  [ -f /usr/share/codec2/wav/hts1a.wav ] || packages+=(codec2-examples)
  [ -f /usr/share/sounds/alsa/Front_Center.wav ] || packages+=(alsa-utils)
  command -v espeak-ng >/dev/null 2>&1 || packages+=(espeak-ng)
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
npm_ci web
$runtime_only || npm_ci tests/browser
