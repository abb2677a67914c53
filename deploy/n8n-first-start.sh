#!/bin/sh
# n8n's entrypoint under `docker compose up`: on the first start of its volume, imports the voice
# agent's workflows (n8n/*.json) and activates them, then runs n8n. Later starts only run n8n, so
# workflows edited in the editor are never replaced. Delete the n8n volume to import them again.
set -eu
home=${N8N_USER_FOLDER:-/home/node}/.n8n
workflows=${WORKFLOWS_DIR:-/voice-agent/workflows}
marker=$home/.voice-agent-workflows-imported
# The lead-capture and clinic-tools workflows store call records and bookings here.
mkdir -p "$home" "$LEAD_CAPTURE_DIR" "$CLINIC_BOOKINGS_DIR"
if [ ! -f "$marker" ]; then
  echo "first start: importing and activating the voice agent's workflows" >&2
  n8n import:workflow --separate --input="$workflows"
  # Activation from the command line takes effect when n8n starts, which is next.
  n8n update:workflow --all --active=true
  touch "$marker"
fi
exec n8n start
