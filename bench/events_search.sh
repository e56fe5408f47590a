#!/usr/bin/env bash
# Event search under load (issue 4): 100,000 seeded events, a 25 km radius around a French
# city with a 7-day window, 50 concurrent clients. Prints the EXPLAIN of the query, then
# the load tool's results: closed loop (saturation) and paced at several rates.
#
#   bench/events_search.sh                 # uses postgres://postgres@127.0.0.1:5432
#   BIN=/tmp/tunelink-before bench/events_search.sh   # another build of the server (before/after)
#   RATES="300 500" DURATION=10 …          # the paced runs and their length (s)
#   REDIS=on …                             # sessions from the in-process cache (see below)
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${PG_BASE:-postgres://postgres@127.0.0.1:5432}
DB=tunelink_bench_events
PORT=${PORT:-18081}
export SQLX_OFFLINE=true

if [ -n "${BIN:-}" ]; then
  cargo build -q --release -p tunelink-load
else
  cargo build -q --release --workspace
fi
BIN=${BIN:-target/release/tunelink}
DURATION=${DURATION:-30}
psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $DB"
DATABASE_URL="$BASE/$DB" RUST_LOG=warn "$BIN" seed --users 5000 --events 100000 --seed 42

echo "### EXPLAIN: 25 km around Paris (the densest), starting in 10 to 17 days, by cell"
psql "$BASE/$DB" -qc "VACUUM ANALYZE" # as autovacuum soon would: index-only scans need it
psql "$BASE/$DB" -q <<'SQL' | grep -vE '^\s*$' | sed 's/^/    /' || true # (no cell in builds before it)
-- What events::search::by_cell sends for this search (Paris is in cells 277364 to 278365).
PREPARE s(float8, float8, int4[], float8, timestamptz, timestamptz, int8) AS
WITH o AS MATERIALIZED (SELECT ll_to_earth($1, $2) AS p)
SELECT e.id, u.username, c.distance_m FROM (
  SELECT c.* FROM unnest($3::int4[]) AS k(cell), o, LATERAL (
    SELECT e.id, e.starts_at, earth_distance(o.p, e.location) AS distance_m FROM events e
    WHERE e.cell = k.cell AND earth_distance(o.p, e.location) <= $4
      AND e.starts_at >= $5 AND e.starts_at <= $6
      AND e.status = 'scheduled' AND e.ends_at > now() AND e.starts_at > now() - interval '31 days'
    ORDER BY e.starts_at, e.id LIMIT $7) c
  ORDER BY c.starts_at, c.id LIMIT $7) c
JOIN events e ON e.id = c.id JOIN users u ON u.id = e.creator_id ORDER BY c.starts_at, c.id;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON)
  EXECUTE s(48.8566, 2.3522, '{277364,277365,278364,278365}', 25000,
            now() + interval '10 days', now() + interval '17 days', 21);
SQL

# REDIS=on: a Redis of its own, so sessions are checked from the in-process cache (as with
# several instances) rather than with a query per request (the single-instance default).
REDIS_URL=
if [ "${REDIS:-off}" = on ]; then
  redis-server --port 16392 --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --logfile /dev/null
  REDIS_URL=redis://127.0.0.1:16392
fi
# Capacity, not fairness: the per-user search limits are off (RATE_LIMITS=off).
DATABASE_URL="$BASE/$DB" BIND_ADDR="127.0.0.1:$PORT" REDIS_URL=$REDIS_URL RATE_LIMITS=off RUST_LOG=warn "$BIN" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; [ -z "$REDIS_URL" ] || redis-cli -p 16392 shutdown nosave >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

mkdir -p bench/results
echo "### closed loop: 50 clients back to back"
target/release/tunelink-load search --url "http://127.0.0.1:$PORT" --clients 50 --duration "$DURATION" \
  --out bench/results/search-closed.json
for rate in ${RATES:-300 400 500}; do
  echo "### paced: 50 clients, $rate requests/s in all"
  target/release/tunelink-load search --url "http://127.0.0.1:$PORT" --clients 50 --rate "$rate" \
    --duration "$DURATION" --out "bench/results/search-$rate.json"
done
kill $SERVER
psql "$BASE/postgres" -qc "DROP DATABASE $DB"
