#!/usr/bin/env bash
# The long chaos run: 200 issues, 3 workers, 60 worker SIGKILLs, 6 zombies (SIGSTOP past the
# lease), 3 Redis restarts, 60 GitHub faults, 60 redelivered webhooks, 40 duplicate jobs.
# Exits non-zero on any violation of G1–G5. Extra options are passed on (e.g. --json, --timeline).
#
#   bench/chaos_long.sh                 # seed 7
#   SEED=42 bench/chaos_long.sh --json  # another schedule, machine-readable
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m chaos \
  --issues 200 --workers 3 --seed "${SEED:-7}" \
  --kills 60 --stops 6 --redis-restarts 3 --github-faults 60 \
  --redeliveries 60 --queue-duplicates 40 \
  --chaos-interval 0.5 --issue-interval 0.5 --timeout 900 --progress 15 \
  --workdir "${WORKDIR:-/tmp/aw-chaos-long}" "$@"
