#!/usr/bin/env bash
# Memory after a login burst (issue 20): one release server, 1,000 fixture users, 1,000
# logins from 64 concurrent clients (curl through xargs -P); the server's RSS (VmRSS) is
# sampled before, every 0.5 s during, and for 10 s after the burst.
#
#   bench/login_memory.sh
#
# Prints idle (just before the burst), peak (during it) and after (10 s after the last
# answer), in MiB. Knobs: PG_BASE, LOGINS (1000), CLIENTS (64), USERS (1000), SETTLE (10),
# PORT (18095), BIN (a tunelink binary to measure instead of building this checkout's, e.g.
# one built from an older commit), PASSWORD_HASH_CONCURRENCY (server default when unset).
# Uses a database of its own (tunelink_bench_login), dropped at the end. Samples go to
# bench/results/login-memory.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${PG_BASE:-postgres://postgres@127.0.0.1:5432}
DB=tunelink_bench_login
OUT=bench/results
LOGINS=${LOGINS:-1000}
CLIENTS=${CLIENTS:-64}
USERS=${USERS:-1000}
SETTLE=${SETTLE:-10}
PORT=${PORT:-18095}
URL="http://127.0.0.1:$PORT"
mkdir -p "$OUT"
export SQLX_OFFLINE=true RUST_LOG=${RUST_LOG:-warn} JWT_SECRET=${JWT_SECRET:-hetic}
export DATABASE_URL="$BASE/$DB"
if [ -z "${BIN:-}" ]; then
  cargo build -q --release --bin tunelink
  BIN=target/release/tunelink
fi

SERVER_PID=
SAMPLER_PID=
cleanup() {
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null || true
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    while kill -0 "$SERVER_PID" 2>/dev/null; do sleep 0.2; done
  fi
  psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
}
trap cleanup EXIT

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
threads() { awk '/^Threads:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r);" \
  "binary $BIN; commit $(git rev-parse --short HEAD); $(date -u +%F)"

psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
"$BIN" migrate >/dev/null
"$BIN" load-fixture --users "$USERS" --group-size 0 --out "$OUT/fixture-login.json" >/dev/null

while ss -ltn "sport = :$PORT" | grep -q LISTEN; do sleep 0.5; done # a previous run's, exiting
# Every login comes from this one address: lift the per-address limit. The per-name one
# (10 a minute) stays; each of the fixture's names logs in at most LOGINS/USERS times.
RATE_LIMIT_LOGIN_PER_IP=off BIND_ADDR="127.0.0.1:$PORT" \
  "$BIN" >"$OUT/server-login-memory.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "$URL/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$URL/readyz" >/dev/null
sleep 2
IDLE=$(rss_kib "$SERVER_PID")
IDLE_THREADS=$(threads "$SERVER_PID")

# Sampler: elapsed seconds, RSS KiB, threads; every 0.5 s until killed.
START=$(date +%s.%N)
(
  while kill -0 "$SERVER_PID" 2>/dev/null; do
    printf '%s\t%s\t%s\n' "$(awk -v s="$START" -v n="$(date +%s.%N)" 'BEGIN {printf "%.1f", n - s}')" \
      "$(rss_kib "$SERVER_PID")" "$(threads "$SERVER_PID")"
    sleep 0.5
  done
) >"$OUT/login-memory.tsv" &
SAMPLER_PID=$!

jq -r '.users[].username' "$OUT/fixture-login.json" |
  awk -v n="$LOGINS" '{u[NR] = $0} END {for (i = 0; i < n; i++) print u[i % NR + 1]}' |
  xargs -P "$CLIENTS" -I{} curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 \
    -H 'content-type: application/json' \
    -d '{"login":"{}","password":"tunelink-load"}' "$URL/api/v1/auth/login" \
    >"$OUT/login-memory-statuses.txt" || true
END=$(date +%s.%N)
sleep "$SETTLE"
AFTER=$(rss_kib "$SERVER_PID")
AFTER_THREADS=$(threads "$SERVER_PID")
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=

PEAK=$(awk -v i="$IDLE" 'BEGIN {m = i} $2 > m {m = $2} END {print m}' "$OUT/login-memory.tsv")
PEAK_THREADS=$(awk 'BEGIN {m = 0} $3 > m {m = $3} END {print m}' "$OUT/login-memory.tsv")
echo "logins: $LOGINS from $CLIENTS clients in" \
  "$(awk -v s="$START" -v e="$END" 'BEGIN {printf "%.1f", e - s}') s;" \
  "statuses: $(sort "$OUT/login-memory-statuses.txt" | uniq -c | awk '{printf "%s%s×%s", sep, $2, $1; sep = ", "}')"
echo "RSS MiB: idle $(mib "$IDLE")  peak $(mib "$PEAK")  after ${SETTLE}s $(mib "$AFTER")"
echo "threads: idle $IDLE_THREADS  peak $PEAK_THREADS  after ${SETTLE}s $AFTER_THREADS"
