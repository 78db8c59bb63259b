#!/usr/bin/env bash
# HTTP target throughput against a plain load generator, and 1000 writers.
#
#   benches/http_vs_oha.sh [CONCURRENCY] [SECONDS]
#
# Starts one `converge serve` replica, then measures the same endpoint
# (POST /counters/{key}/increment, one hot key, no idempotency key: the
# same request oha sends) at the same concurrency:
#   1. oha (`cargo install oha --locked`, into ~/.cargo/bin), for SECONDS;
#   2. `converge run --target http` with full recording and checking, for
#      as many ops as oha's rate x SECONDS;
# and prints both rates and their ratio (target: >= 0.8). Then it runs 1000
# concurrent writers and prints converge's own peak RSS (target: < 512 MB).
# Figures only; nothing here asserts a time.
set -euo pipefail
cd "$(dirname "$0")/.."
C="${1:-64}"
SECS="${2:-10}"
OHA="${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}"
[ -x "$OHA" ] || { echo "oha not found: cargo install oha --locked" >&2; exit 3; }
cargo build --release --quiet
BIN=target/release/converge
WORK="$(mktemp -d)"
trap 'kill "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$BIN" serve --replicas 1 --port 0 --data-dir "$WORK/data" > "$WORK/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 1 100); do grep -q "listening on" "$WORK/serve.log" 2>/dev/null && break; sleep 0.1; done
URL="$(grep -o 'http://[0-9.:]*' "$WORK/serve.log" | head -1)"
echo "converge serve: $URL (pid $SERVE_PID)"

"$OHA" -z "${SECS}s" -c "$C" --no-tui --output-format json -m POST \
  -H 'content-type: application/json' -d '{"delta":1}' \
  "$URL/counters/bench-oha/increment" > "$WORK/oha.json"
OHA_RPS="$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["summary"]["requestsPerSec"]))' "$WORK/oha.json")"
echo "oha: $OHA_RPS requests/s at concurrency $C"

cat > "$WORK/bench.toml" <<TOML
workload = "g-counter"
replicas = ["$URL"]
max_connections_per_host = $((C > 256 ? C : 256))

[ops.increment]
path = "/counters/{key}/increment"
body = { delta = "{delta}" }

[ops.read]
method = "GET"
path = "/counters/{key}"
value = "/value"
TOML
OPS=$((OHA_RPS * SECS))
"$BIN" run --target http --http-config "$WORK/bench.toml" --writers "$C" --ops "$OPS" \
  --read-ratio 0 --nemesis none --seed 1 --out "$WORK/converge" --format json > "$WORK/converge.json"
read -r CONV_RPS VERDICT RSS < <(python3 -c '
import json,sys; r=json.load(open(sys.argv[1]))
print(round(r["throughput_ops_s"]), r["verdict"], r["memory"]["rss_peak_mb"])' "$WORK/converge.json")
echo "converge run --target http: $CONV_RPS ops/s at $C writers, $OPS ops, verdict $VERDICT, converge peak RSS $RSS MB"
python3 -c "import sys; print('ratio converge/oha: %.2f (target >= 0.8)' % (int(sys.argv[1])/int(sys.argv[2])))" "$CONV_RPS" "$OHA_RPS"

"$BIN" run --target http --http-config "$WORK/bench.toml" --writers 1000 --ops 100000 \
  --read-ratio 0.05 --nemesis none --seed 2 --out "$WORK/scale" --format json > "$WORK/scale.json"
python3 -c '
import json,sys; r=json.load(open(sys.argv[1]))
print("1000 writers: %d ops, %.0f ops/s, verdict %s, errors %.4f, converge peak RSS %.1f MB (target < 512)" % (
  r["counts"]["ops"], r["throughput_ops_s"], r["verdict"], r["error_rate"], r["memory"]["rss_peak_mb"]))' "$WORK/scale.json"
