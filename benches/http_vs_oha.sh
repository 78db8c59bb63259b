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
# alternating the two ROUNDS (3) times, since the machine may be shared, and
# prints the rates and the ratio of the medians (target: >= 0.8). Then 1000
# concurrent writers, printing converge's own peak RSS (target: < 512 MB).
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

# The machine is shared: alternate the two ROUNDS times and compare medians.
ROUNDS="${ROUNDS:-3}"
OHA_RATES=(); CONV_RATES=()
for round in $(seq 1 "$ROUNDS"); do
  "$OHA" -z "${SECS}s" -c "$C" --no-tui --output-format json -m POST \
    -H 'content-type: application/json' -d '{"delta":1}' \
    "$URL/counters/bench-oha/increment" > "$WORK/oha.json"
  OHA_RPS="$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["summary"]["requestsPerSec"]))' "$WORK/oha.json")"
  OPS=$((OHA_RPS * SECS))
  "$BIN" run --target http --http-config "$WORK/bench.toml" --writers "$C" --ops "$OPS" \
    --read-ratio 0 --nemesis none --seed "$round" --out "$WORK/converge-$round" --format json > "$WORK/converge.json"
  read -r CONV_RPS VERDICT RSS < <(python3 -c '
import json,sys; r=json.load(open(sys.argv[1]))
print(round(r["throughput_ops_s"]), r["verdict"], r["memory"]["rss_peak_mb"])' "$WORK/converge.json")
  echo "round $round: oha $OHA_RPS req/s; converge $CONV_RPS ops/s ($OPS ops, verdict $VERDICT, converge peak RSS $RSS MB) at concurrency $C"
  OHA_RATES+=("$OHA_RPS"); CONV_RATES+=("$CONV_RPS")
done
python3 -c '
import statistics,sys
n=len(sys.argv)//2; o=list(map(int,sys.argv[1:1+n])); c=list(map(int,sys.argv[1+n:]))
print("median: oha %d req/s, converge %d ops/s, ratio %.2f (target >= 0.8)" % (statistics.median(o), statistics.median(c), statistics.median(c)/statistics.median(o)))' "${OHA_RATES[@]}" "${CONV_RATES[@]}"

"$BIN" run --target http --http-config "$WORK/bench.toml" --writers 1000 --ops 100000 \
  --read-ratio 0.05 --nemesis none --seed 2 --out "$WORK/scale" --format json > "$WORK/scale.json"
python3 -c '
import json,sys; r=json.load(open(sys.argv[1]))
print("1000 writers: %d ops, %.0f ops/s, verdict %s, errors %.4f, converge peak RSS %.1f MB (target < 512)" % (
  r["counts"]["ops"], r["throughput_ops_s"], r["verdict"], r["error_rate"], r["memory"]["rss_peak_mb"]))' "$WORK/scale.json"
