#!/usr/bin/env bash
# A real n8n for trying and testing the workflows in n8n/, installed once into a cache outside
# the repository (n8n is ~1500 npm packages and two native modules; it takes minutes to install).
#
#   scripts/n8n.sh install   install n8n 1.123.81 unless the cache has it; prints its directory
#   scripts/n8n.sh serve [PORT]
#                            import and activate n8n/*.json (or $N8N_WORKFLOWS_DIR/*.json) into
#                            $N8N_USER_FOLDER (default: the cache's n8n-home) on first use, then
#                            run n8n on PORT (default 5678); call records go to $LEAD_CAPTURE_DIR
#                            (default: $N8N_USER_FOLDER/leads), the clinic's bookings to
#                            $CLINIC_BOOKINGS_DIR (default: $N8N_USER_FOLDER/bookings), and with
#                            $LEAD_CAPTURE_SECRET set (the worker's N8N_WEBHOOK_SECRET) only records
#                            and tool requests signed with it are taken
#
# The cache is ${VOICE_AGENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/voice-agent}/n8n-1.123.81.
# n8n 1.123 is the newest line that runs on Node 20 (2.x needs Node 24). A plain
# `npm install n8n@1.123.81` fails without access to the SheetJS CDN and with Node 20, so: xlsx
# comes from the npm registry (override to 0.18.5), isolated-vm is pinned to 5.0.4 (6.x does not
# build against Node 20's headers), and the native modules sqlite3 and isolated-vm, whose install
# scripts npm 11 skips, are built from source with `npm rebuild`.
set -euo pipefail

readonly version=1.123.81
readonly repo=$(cd "$(dirname "$0")/.." && pwd)
readonly cache_root=${VOICE_AGENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/voice-agent}
readonly install_dir=$cache_root/n8n-$version
# Written last, so a directory without it is not a usable install.
readonly marker=$install_dir/.installed
# Upper bounds for each step, far above what a 2-core machine needs (about 10 minutes in all).
readonly lock_wait_secs=${N8N_INSTALL_LOCK_WAIT_SECS:-1800}
readonly install_timeout_secs=${N8N_INSTALL_TIMEOUT_SECS:-1500}
readonly rebuild_timeout_secs=${N8N_REBUILD_TIMEOUT_SECS:-900}

fail() {
  echo "n8n.sh: $*" >&2
  exit 1
}

log() {
  echo "n8n.sh: $*" >&2
}

check_tools() {
  command -v node >/dev/null 2>&1 || fail "node is not installed; n8n $version needs Node.js 20.19 or newer (below 25)"
  command -v npm >/dev/null 2>&1 || fail "npm is not installed; it comes with Node.js"
  local node_version major minor
  node_version=$(node -p 'process.versions.node')
  major=${node_version%%.*}
  minor=${node_version#*.}
  minor=${minor%%.*}
  if [ "$major" -lt 20 ] || { [ "$major" -eq 20 ] && [ "$minor" -lt 19 ]; } || [ "$major" -gt 24 ]; then
    fail "Node.js $node_version cannot run n8n $version; it needs 20.19 or newer, below 25"
  fi
  local missing=()
  for tool in python3 make g++; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] || fail "building n8n's native modules needs ${missing[*]}; run scripts/setup.sh"
}

# node-gyp downloads Node's headers unless told where they are, and only the npm registry is
# reachable from these machines; Node installed from packages ships them under its prefix.
use_local_node_headers() {
  if [ -z "${npm_config_nodedir:-}" ]; then
    local prefix
    prefix=$(dirname "$(dirname "$(node -p 'process.execPath')")")
    if [ -f "$prefix/include/node/node.h" ]; then
      export npm_config_nodedir=$prefix
    fi
  fi
}

# Runs one install step with a time bound; on failure shows the end of its log and says which
# step failed and why it may have.
step() {
  local what=$1 secs=$2 log_file=$3
  shift 3
  log "$what (at most ${secs}s)"
  local status=0
  timeout --kill-after=30 "$secs" "$@" >>"$log_file" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    echo "--- last lines of $log_file" >&2
    tail -n 40 "$log_file" >&2
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
      fail "$what did not finish within ${secs}s"
    fi
    local registry
    registry=$(npm config get registry 2>/dev/null || echo "the npm registry")
    if grep -qE 'ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|ECONNRESET|network' "$log_file"; then
      fail "$what failed (exit $status): $registry could not be reached; n8n is installed from the npm registry"
    fi
    fail "$what failed (exit $status); see the log above"
  fi
}

install() {
  if [ -f "$marker" ]; then
    echo "$install_dir"
    return
  fi
  check_tools
  mkdir -p "$cache_root" || fail "cannot create the cache directory $cache_root (set VOICE_AGENT_CACHE)"
  # One install at a time; the others wait and then find it done.
  exec 9>"$cache_root/n8n-$version.lock"
  flock -w "$lock_wait_secs" 9 || fail "another n8n install held $cache_root/n8n-$version.lock for ${lock_wait_secs}s"
  if [ -f "$marker" ]; then
    echo "$install_dir"
    return
  fi
  # Leftovers of installs that were killed: holding the lock, no one else is using them.
  rm -rf "$cache_root/.n8n-$version.tmp."* "$install_dir"

  local work
  work=$(mktemp -d "$cache_root/.n8n-$version.tmp.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  cat >"$work/package.json" <<EOF
{
  "name": "voice-agent-n8n",
  "private": true,
  "description": "n8n for the voice agent's workflows (installed by scripts/n8n.sh)",
  "dependencies": { "n8n": "$version" },
  "overrides": { "xlsx": "0.18.5", "isolated-vm": "5.0.4" }
}
EOF
  use_local_node_headers
  log "installing n8n $version into $install_dir (once; about 10 minutes)"
  local log_file=$work/install.log
  step "npm install n8n@$version" "$install_timeout_secs" "$log_file" \
    npm install --prefix "$work" --no-audit --no-fund --loglevel=warn
  step "building n8n's native modules (npm rebuild sqlite3 isolated-vm)" "$rebuild_timeout_secs" "$log_file" \
    npm rebuild --prefix "$work" sqlite3 isolated-vm
  local installed
  installed=$(cd "$work" && N8N_USER_FOLDER="$work/check-home" timeout 120 node node_modules/n8n/bin/n8n --version 2>>"$log_file" | tail -n 1) ||
    fail "the installed n8n does not start; see $log_file"
  [ "$installed" = "$version" ] || fail "the installed n8n reports version '$installed', expected $version"
  rm -rf "$work/check-home"
  mv "$log_file" "$work/.install.log"
  touch "$work/.installed"
  mv "$work" "$install_dir"
  trap - EXIT
  log "n8n $version installed"
  echo "$install_dir"
}

serve() {
  local port=${1:-5678}
  local dir
  dir=$(install)
  export N8N_USER_FOLDER=${N8N_USER_FOLDER:-$cache_root/n8n-home}
  export N8N_PORT=$port
  export N8N_LISTEN_ADDRESS=${N8N_LISTEN_ADDRESS:-127.0.0.1}
  # Where the lead-capture workflow stores call records; it must exist.
  export LEAD_CAPTURE_DIR=${LEAD_CAPTURE_DIR:-$N8N_USER_FOLDER/leads}
  mkdir -p "$LEAD_CAPTURE_DIR"
  # Where the clinic-tools workflow keeps bookings; it must exist too.
  export CLINIC_BOOKINGS_DIR=${CLINIC_BOOKINGS_DIR:-$N8N_USER_FOLDER/bookings}
  mkdir -p "$CLINIC_BOOKINGS_DIR"
  # Offline and quiet: no telemetry, version checks or template gallery (they need the internet).
  export N8N_DIAGNOSTICS_ENABLED=${N8N_DIAGNOSTICS_ENABLED:-false}
  export N8N_PERSONALIZATION_ENABLED=${N8N_PERSONALIZATION_ENABLED:-false}
  export N8N_VERSION_NOTIFICATIONS_ENABLED=${N8N_VERSION_NOTIFICATIONS_ENABLED:-false}
  export N8N_TEMPLATES_ENABLED=${N8N_TEMPLATES_ENABLED:-false}
  export N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS=${N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS:-true}
  # The lead-capture workflow reads LEAD_CAPTURE_DIR and LEAD_CAPTURE_SECRET from n8n's
  # environment. n8n 1.123 lets workflows read it unless this is `true`, and warns that the
  # default will change (it did in 2.0), so it is said explicitly.
  export N8N_BLOCK_ENV_ACCESS_IN_NODE=${N8N_BLOCK_ENV_ACCESS_IN_NODE:-false}
  local workflows=${N8N_WORKFLOWS_DIR:-$repo/n8n}
  local n8n=(node "$dir/node_modules/n8n/bin/n8n")
  # Only into a new user folder: importing again would replace workflows someone has edited.
  local imported=$N8N_USER_FOLDER/.voice-agent-workflows-imported
  if [ ! -f "$imported" ]; then
    mkdir -p "$N8N_USER_FOLDER"
    log "importing and activating the workflows in $workflows"
    timeout 300 "${n8n[@]}" import:workflow --separate --input="$workflows" >&2 ||
      fail "n8n import:workflow --separate --input=$workflows failed"
    timeout 300 "${n8n[@]}" update:workflow --all --active=true >&2 ||
      fail "n8n update:workflow --all --active=true failed"
    touch "$imported"
  fi
  log "n8n $version on http://$N8N_LISTEN_ADDRESS:$port (data in $N8N_USER_FOLDER)"
  exec "${n8n[@]}" start
}

case "${1:-}" in
  install) install ;;
  serve) serve "${2:-}" ;;
  *)
    echo "usage: scripts/n8n.sh install | serve [PORT]" >&2
    exit 2
    ;;
esac
