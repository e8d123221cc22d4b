#!/usr/bin/env bash
# Gateway benchmark: the same small authenticated GET, side by side in one run,
#   (a) straight to the upstream over HTTPS,
#   (b) through nginx as a plain TLS reverse proxy (no authentication),
#   (c) through the Lakeward gateway with every stage on (TLS, IP lists, PAT, Cedar, assertion,
#       audit, metrics),
#   (d) the same gateway restarted with a per-principal rate limit too high ever to refuse
#       (limits per process, no Redis): the limiter's cost, beside (c).
# The proxy under test is pinned to core 0 (nginx: one worker; Lakeward: one worker thread);
# the load generator and the upstream run on core 1, so the proxy's core is the one saturated.
# Prints requests/s (closed loop, 64 keep-alive connections, 3 runs), p50/p99 at a fixed rate
# (open loop, warm connections), CPU microseconds per request, and the ratios gateway/nginx.
#
# Usage: bench/gateway.sh [--duration SECS] [--rate RPS]
# Needs: nginx and wrk (Debian packages), oha (cargo install); installs them when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10
rate=5000
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/lakeward-target}"
tools=/var/tmp/lakeward-bench-tools
mkdir -p "$tools"
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq nginx-light wrk >/dev/null
fi
if [ ! -x "$tools/bin/oha" ]; then
  cargo install --quiet --locked --root "$tools" oha@1.12.0
fi
oha="$tools/bin/oha"
# The same build as bench/tpch.sh: one set of resolved features, so running both benchmarks
# costs one release build of DataFusion, not two.
cargo build --release --quiet --workspace --bins --examples
lakeward="$CARGO_TARGET_DIR/release/lakeward"

work=$(mktemp -d /tmp/lakeward-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up_tls=$(free_port); up_http=$(free_port); ngx_port=$(free_port); gw_port=$(free_port); admin_port=$(free_port)

gw_limits_port=$(free_port); admin_limits_port=$(free_port)

# Lakeward first: its data directory provides the CA and certificate every server here uses.
lakeward_config() { # file gateway-port admin-port extra-toml
  cat > "$1" <<TOML
data_dir = "$work/lakeward-data"
[upstreams]
runtime_url = "http://127.0.0.1:$up_http"
[gateway]
listen = "127.0.0.1:$2"
admin_listen = "127.0.0.1:$3"
worker_threads = 1
$4
TOML
}
lakeward_config "$work/lakeward.toml" "$gw_port" "$admin_port" ""
# The same, with a request limit every request is decided against and none ever reaches.
lakeward_config "$work/lakeward-limits.toml" "$gw_limits_port" "$admin_limits_port" '
[[gateway.rate_limits.rules]]
name = "bench-per-principal"
per = "principal"
requests = 100000000
period_secs = 1'
start_lakeward() { # config
  LAKEWARD_LOG=warn taskset -c 0 "$lakeward" serve --config "$1" > "$work/lakeward.out" 2>&1 &
  lakeward_pid=$!; pids+=("$lakeward_pid")
}
start_lakeward "$work/lakeward.toml"
wait_for() { # url: 200 within 20 s, else show Lakeward's output and stop
  for _ in $(seq 1 200); do
    curl -sf "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$work/lakeward.out" >&2
  exit 1
}
# Alive first (the data directory and its certificate exist then); ready once the upstream runs.
wait_for "http://127.0.0.1:$admin_port/healthz"
data="$work/lakeward-data"
token=$(cat "$data/admin-token")
body='{"warehouses":[{"id":"bench","name":"bench","state":"RUNNING"}]}'

nginx_conf() { # name core extra-server-blocks
  mkdir -p "$work/$1"
  cat > "$work/$1/nginx.conf" <<NGINX
worker_processes 1;
worker_cpu_affinity $2;
daemon off;
pid $work/$1/nginx.pid;
error_log $work/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/$1/tmp; proxy_temp_path $work/$1/tmp;
  fastcgi_temp_path $work/$1/tmp; uwsgi_temp_path $work/$1/tmp; scgi_temp_path $work/$1/tmp;
  keepalive_requests 1000000;
  ssl_certificate $data/server.pem;
  ssl_certificate_key $data/server-key.pem;
  $3
}
NGINX
}
# The upstream: the same fixed JSON over HTTPS (for direct) and HTTP (for the proxies).
nginx_conf upstream 10 "
  server { listen 127.0.0.1:$up_tls ssl http2; location / { default_type application/json; return 200 '$body'; } }
  server { listen 127.0.0.1:$up_http; location / { default_type application/json; return 200 '$body'; } }"
# nginx as a plain TLS reverse proxy.
nginx_conf proxy 01 "
  upstream backend { server 127.0.0.1:$up_http; keepalive 64; }
  server { listen 127.0.0.1:$ngx_port ssl http2;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
nginx -c "$work/upstream/nginx.conf" & pids+=($!)
nginx -c "$work/proxy/nginx.conf" & pids+=($!)
wait_for "http://127.0.0.1:$up_http/"
wait_for "http://127.0.0.1:$admin_port/readyz"

path=/api/2.0/sql/warehouses
declare -A url=(
  [direct]="https://127.0.0.1:$up_tls$path"
  [nginx]="https://127.0.0.1:$ngx_port$path"
  [gateway]="https://127.0.0.1:$gw_port$path"
  [limits]="https://127.0.0.1:$gw_limits_port$path"
)
# Every target must answer 200 with the upstream's body before we measure it.
for target in direct nginx gateway; do
  got=$(curl -s --cacert "$data/ca.pem" -H "Authorization: Bearer $token" "${url[$target]}")
  [ "$got" = "$body" ] || { echo "$target answered: $got" >&2; exit 1; }
done

cpu_ticks() { # total utime+stime of the processes whose pids are given
  local total=0
  for pid in "$@"; do
    read -r -a f < "/proc/$pid/stat"
    total=$((total + f[13] + f[14]))
  done
  echo "$total"
}
proxy_pids() {
  case "$1" in
    direct) pgrep -f "nginx: worker process" -P "$(cat "$work/upstream/nginx.pid")" ;;
    nginx) pgrep -f "nginx: worker process" -P "$(cat "$work/proxy/nginx.pid")" ;;
    gateway|limits) echo "$lakeward_pid" ;;
  esac
}
hz=$(getconf CLK_TCK)

declare -A rps cpu p50 p99
measure() { # target
  local target=$1 before after total_requests sum_rps run out r n errors json
  local -a watched
  # Warm-up, then three closed-loop runs.
  taskset -c 1 wrk -t1 -c64 -d2s -H "Authorization: Bearer $token" "${url[$target]}" >/dev/null
  mapfile -t watched < <(proxy_pids "$target")
  before=$(cpu_ticks "${watched[@]}")
  total_requests=0; sum_rps=0
  for run in 1 2 3; do
    out=$(taskset -c 1 wrk -t1 -c64 -d"${duration}s" -H "Authorization: Bearer $token" "${url[$target]}")
    r=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    errors=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    [ -z "$errors" ] || { echo "$target: $errors non-2xx responses" >&2; exit 1; }
    sum_rps=$(python3 -c "print($sum_rps + $r)")
    total_requests=$((total_requests + n))
  done
  after=$(cpu_ticks "${watched[@]}")
  rps[$target]=$(python3 -c "print(round($sum_rps / 3))")
  cpu[$target]=$(python3 -c "print(round(($after - $before) / $hz * 1e6 / $total_requests, 1))")
  # Open loop at a fixed rate over warm keep-alive connections.
  json=$(taskset -c 1 "$oha" --no-tui --output-format json -q "$rate" -z "${duration}s" -c 64 --latency-correction \
    --cacert "$data/ca.pem" -H "Authorization: Bearer $token" "${url[$target]}")
  p50[$target]=$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(round(d['latencyPercentiles']['p50']*1000, 3))" "$json")
  p99[$target]=$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(round(d['latencyPercentiles']['p99']*1000, 3))" "$json")
}
for target in direct nginx gateway; do measure "$target"; done

# (d): the same data directory (CA, token, policies), the limits configuration.
kill "$lakeward_pid"; wait "$lakeward_pid" 2>/dev/null || true
start_lakeward "$work/lakeward-limits.toml"
wait_for "http://127.0.0.1:$admin_limits_port/readyz"
got=$(curl -s --cacert "$data/ca.pem" -H "Authorization: Bearer $token" "${url[limits]}")
[ "$got" = "$body" ] || { echo "limits answered: $got" >&2; exit 1; }
measure limits

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '%-8s %12s %14s %14s %18s\n' target "requests/s" "p50 ms@${rate}" "p99 ms@${rate}" "cpu us/request"
for target in direct nginx gateway limits; do
  printf '%-8s %12s %14s %14s %18s\n' "$target" "${rps[$target]}" "${p50[$target]}" "${p99[$target]}" "${cpu[$target]}"
done
python3 - "${rps[gateway]}" "${rps[nginx]}" "${p50[gateway]}" "${p50[direct]}" "${cpu[gateway]}" "${cpu[nginx]}" \
  "${rps[limits]}" "${cpu[limits]}" <<'PY'
import sys
g_rps, n_rps, g_p50, d_p50, g_cpu, n_cpu, l_rps, l_cpu = map(float, sys.argv[1:])
print(f"gateway/nginx requests/s: {g_rps / n_rps:.2f}x   (bar: >= 0.50x)")
print(f"gateway p50 added over direct: {g_p50 - d_p50:.3f} ms   (bar: <= 0.5 ms)")
print(f"gateway/nginx cpu per request: {g_cpu / n_cpu:.2f}x")
print(f"rate limits on vs off, requests/s: {l_rps:.0f} vs {g_rps:.0f} ({l_rps / g_rps:.2f}x)"
      f"   cpu us/request: {l_cpu} vs {g_cpu}")
PY
