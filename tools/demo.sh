#!/usr/bin/env bash
# Starts two demo origins (127.0.0.1:9001, :9002) and portico in front of them
# on examples/portico.yaml (listening on :8080). Ctrl-C stops everything.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
/usr/bin/python3 examples/demo_origin.py 9001 origin-a & pids+=($!)
/usr/bin/python3 examples/demo_origin.py 9002 origin-b & pids+=($!)
sleep 0.3
echo "demo origins on 127.0.0.1:9001 and :9002; portico on :8080 (Ctrl-C to stop)"
echo "try: curl -i http://127.0.0.1:8080/   curl -i http://127.0.0.1:8080/static/   curl -i http://127.0.0.1:8080/old/x"
build/portico -c examples/portico.yaml & pids+=($!)
wait "${pids[-1]}"
