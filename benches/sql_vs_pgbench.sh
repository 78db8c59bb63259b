#!/usr/bin/env bash
# converge's SQL target against pgbench on the same statement.
#
# Both run the atomic-upsert counter of examples/sql-counter-upsert-ok.toml
# (INSERT ... ON CONFLICT (k) DO UPDATE SET v = counter.v + excluded.v) at
# the same concurrency for the same time, with the same key mix (by default
# 70% of ops on key 0, the rest uniform over keys 1..3, as in the example). converge records every op to
# history.jsonl and checks the history afterwards; only its writing phase
# is timed (report.json throughput_ops_s). Prints both rates and the ratio
# (target: >= 0.9).
#
# Usage: [KEYS=4 HOT=70] benches/sql_vs_pgbench.sh [URL] [CLIENTS] [SECONDS]
#   KEYS: keys; HOT: percent of ops on key 0 (KEYS=10000 HOT=0: little contention).
#   URL defaults to $CONVERGE_TEST_DATABASE_URL or postgres://postgres@127.0.0.1:5432/test
#   (trust auth; the URL's password, if any, is never printed).
set -euo pipefail
cd "$(dirname "$0")/.."

URL="${1:-${CONVERGE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}}"
CLIENTS="${2:-64}"
SECONDS_="${3:-10}"
PGBENCH="${PGBENCH:-$(command -v pgbench || echo /usr/bin/pgbench)}"
BIN="${CONVERGE_BIN:-target/release/converge}"
KEYS="${KEYS:-4}"
HOT="${HOT:-70}"
SCHEMA=bench_pgbench
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

[ -x "$BIN" ] || cargo build --release --quiet
command -v psql >/dev/null || { echo "psql not found" >&2; exit 3; }

psql "$URL" -qX -v ON_ERROR_STOP=1 -o /dev/null 2>/dev/null <<SQL
DROP SCHEMA IF EXISTS $SCHEMA CASCADE;
CREATE SCHEMA $SCHEMA;
CREATE TABLE $SCHEMA.counter (k BIGINT PRIMARY KEY, v BIGINT NOT NULL);
SQL

cat > "$WORK/upsert.sql" <<SQL
\\set r random(1, 100)
\\set k case when :r <= $HOT then 0 else random(1, $((KEYS - 1))) end
\set d random(-5, 5)
INSERT INTO counter (k, v) VALUES (:k, :d) ON CONFLICT (k) DO UPDATE SET v = counter.v + excluded.v;
SQL

echo "pgbench: -c $CLIENTS -j 2 -T $SECONDS_ -n -M prepared"
PGOPTIONS="-c search_path=$SCHEMA" "$PGBENCH" "$URL" -f "$WORK/upsert.sql" \
  -c "$CLIENTS" -j 2 -T "$SECONDS_" -n -M prepared >"$WORK/pgbench.txt"
PG_TPS=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/pgbench.txt" | head -1)
psql "$URL" -qX -o /dev/null -c "DROP SCHEMA $SCHEMA CASCADE"

echo "converge: --writers $CLIENTS --duration $SECONDS_ (recording on)"
"$BIN" run --scenario examples/sql-counter-upsert-ok.toml --database-url "$URL" \
  --writers "$CLIENTS" --duration "$SECONDS_" --ops 1000000000 --read-ratio 0 \
  --hot-key-ratio "$(python3 -c "print($HOT / 100)")" --keys "$KEYS" --seed 1 --out "$WORK/converge" --format json >"$WORK/report.json"
CV_TPS=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["throughput_ops_s"], 1))' "$WORK/report.json")
VERDICT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["verdict"])' "$WORK/report.json")
psql "$URL" -qX -o /dev/null -c "DROP SCHEMA IF EXISTS converge CASCADE"

RATIO=$(python3 -c "print(round($CV_TPS / $PG_TPS, 3))")
echo "pgbench TPS:  $PG_TPS"
echo "converge TPS: $CV_TPS (verdict $VERDICT)"
echo "ratio:        $RATIO (target >= 0.9)"
