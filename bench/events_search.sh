#!/usr/bin/env bash
# Event search under load (issue 4): 100,000 seeded events, a 25 km radius around a French
# city with a 7-day window, 50 concurrent clients. Prints the EXPLAIN of the query, then
# the load tool's results: closed loop (saturation) and paced at several rates.
#
#   bench/events_search.sh                 # uses postgres://postgres@127.0.0.1:5432
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${PG_BASE:-postgres://postgres@127.0.0.1:5432}
DB=tunelink_bench_events
PORT=${PORT:-18081}
export SQLX_OFFLINE=true

cargo build -q --release --workspace
psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $DB"
DATABASE_URL="$BASE/$DB" RUST_LOG=warn target/release/tunelink seed --users 5000 --events 100000 --seed 42

echo "### EXPLAIN: 25 km around Paris (the densest), starting in 10 to 17 days"
psql "$BASE/$DB" -q <<'SQL' | grep -vE '^\s*$' | sed 's/^/    /'
PREPARE s(float8, float8, float8, float8, float8, timestamptz, timestamptz, int8) AS
WITH o AS MATERIALIZED (SELECT ll_to_earth($1, $2) AS p)
SELECT e.id, u.username, e.distance_m FROM (
  SELECT e.*, earth_distance(o.p, e.location) AS distance_m FROM events e, o
  WHERE e.starts_at >= $6 AND e.starts_at <= $7 AND e.status = 'scheduled' AND e.ends_at > now()
    AND cube(earth_box(o.p, $3), $4, $5) @> cube(e.location, event_epoch(e.starts_at))
    AND earth_distance(o.p, e.location) <= $3
  ORDER BY starts_at, id LIMIT $8) e
JOIN users u ON u.id = e.creator_id ORDER BY e.starts_at, e.id;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON)
  EXECUTE s(48.8566, 2.3522, 25000, event_epoch(now() + interval '10 days') - 1,
            event_epoch(now() + interval '17 days') + 1, now() + interval '10 days',
            now() + interval '17 days', 21);
SQL

DATABASE_URL="$BASE/$DB" BIND_ADDR="127.0.0.1:$PORT" RUST_LOG=warn target/release/tunelink &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

mkdir -p bench/results
echo "### closed loop: 50 clients back to back"
target/release/tunelink-load search --url "http://127.0.0.1:$PORT" --clients 50 --duration 30 \
  --out bench/results/search-closed.json
for rate in 300 400 500; do
  echo "### paced: 50 clients, $rate requests/s in all"
  target/release/tunelink-load search --url "http://127.0.0.1:$PORT" --clients 50 --rate "$rate" \
    --duration 30 --out "bench/results/search-$rate.json"
done
kill $SERVER
psql "$BASE/postgres" -qc "DROP DATABASE $DB"
