#!/usr/bin/env bash
# The API load benchmark: a release `kamachiq serve` on 127.0.0.1 with a store of 10,000 runs,
# loaded with wrk (Debian package `wrk`) for a fixed time per endpoint:
#   GET  /v1/workflows/{id}      one run in full (target: >= 20,000 requests/s, p99 < 10 ms)
#   GET  /v1/kamachiq/summary    the tenant's KPIs over 10,000 runs (target: < 5 ms)
#   POST /v1/plans/execute       small plans accepted (target: >= 1,000 per second)
# Prints wrk's figures. Usage: benches/api.sh [seconds per endpoint, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH="${1:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
PORT="${PORT:-18241}"
BIN=target/release/kamachiq
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --locked -q

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
kq() { "$BIN" --home "$WORK/home" "$@"; }

kq bench seed --runs 10000 --tenant default
TOKEN="$(kq token create --tenant default --name bench --role operator --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')"
# One run driven at a time: the POST phase measures acceptance, not execution.
KAMACHIQ_SERVER_MAX_RUNS=1 "$BIN" --home "$WORK/home" serve --listen "127.0.0.1:$PORT" >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done

RUN_ID="$(curl -fs -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/workflows?limit=1" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["id"])')"
AUTH="Authorization: Bearer $TOKEN"
load() {
  echo
  echo "== $1"
  shift
  wrk --latency -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" "$@"
}

load "GET /v1/workflows/{id}, one finished run, repeatedly (10,000 runs in the store)" -H "$AUTH" \
  "http://127.0.0.1:$PORT/v1/workflows/$RUN_ID"
# Every run id in turn: the first pass reads each run from the store, later passes find it kept.
python3 - "$WORK/home/kamachiq.db" >"$WORK/ids.txt" <<'PY'
import sqlite3, sys
for (run_id,) in sqlite3.connect(sys.argv[1]).execute("SELECT id FROM runs ORDER BY random()"):
    print(run_id)
PY
TOKEN="$TOKEN" IDS="$WORK/ids.txt" load "GET /v1/workflows/{id}, every run in turn (10,000 runs in the store)" \
  -s benches/runs.lua "http://127.0.0.1:$PORT"
load "GET /v1/kamachiq/summary (10,000 runs in the store)" -H "$AUTH" \
  "http://127.0.0.1:$PORT/v1/kamachiq/summary"
TOKEN="$TOKEN" load "POST /v1/plans/execute (two-deliverable plans)" \
  -s benches/execute.lua "http://127.0.0.1:$PORT/v1/plans/execute"
