#!/usr/bin/env bash
# TPC-H benchmark: the 22 queries of bench/tpch/queries at scale factor SF (default 1),
# generated locally by Lakeward's own `samples` generator, side by side in one run:
#   (a) in-process DataFusion over the Parquet files (runtime/examples/tpch_inprocess.rs, one
#       session for the whole run),
#   (b) through the gateway: HTTPS, PAT, Cedar, assertion, audit, the Statement Execution API
#       and the runtime's per-table authorization, results fetched as JSON_ARRAY,
#   (c) DuckDB (PyPI) over the same files.
# Each query runs RUNS times per engine (default 3), the engines taking turns so that the
# machine's drift falls on all alike; the best run counts. Prints per-query
# seconds and the ratios gateway/in-process and gateway/DuckDB, and the totals.
# Bar (issue #4): gateway total within 1.15x of in-process DataFusion.
#
# Usage: bench/tpch.sh [--sf SF] [--runs RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."

sf=1
runs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --sf) sf=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/lakeward-target}"
venv="${LAKEWARD_VENV:-/var/tmp/lakeward-venv}"
if ! cmp -s tests/python/requirements.txt "$venv/.requirements" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
  cp tests/python/requirements.txt "$venv/.requirements"
fi
# One invocation for both, so they share one feature set (and one build of DataFusion).
cargo build --release --quiet --workspace --bins --examples
lakeward="$CARGO_TARGET_DIR/release/lakeward"
inprocess="$CARGO_TARGET_DIR/release/examples/tpch_inprocess"

# The generated data is kept between runs (it takes a while at SF 1).
data="/var/tmp/lakeward-bench-tpch-sf$sf"
work=$(mktemp -d /tmp/lakeward-tpch.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
gw_port=$(free_port); admin_port=$(free_port)
cat > "$work/lakeward.toml" <<TOML
data_dir = "$data"
[gateway]
listen = "127.0.0.1:$gw_port"
admin_listen = "127.0.0.1:$admin_port"
[runtime]
samples_scale_factor = $sf
TOML
LAKEWARD_LOG=warn "$lakeward" serve --config "$work/lakeward.toml" > "$work/lakeward.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$admin_port/readyz" >/dev/null || { cat "$work/lakeward.out" >&2; exit 1; }

"$venv/bin/python" bench/tpch_compare.py \
  --host "https://127.0.0.1:$gw_port" --token "$(cat "$data/admin-token")" --ca "$data/ca.pem" \
  --tables "$data/lake/samples/tpch" --queries bench/tpch/queries --runs "$runs" \
  --inprocess "$inprocess" --sf "$sf"
