#!/usr/bin/env bash
# REST benchmark (issue 20): main read endpoints on seeded data, closed loop with wrk, CPU
# per process and database round trips per request.
#
#   bench/rest.sh            # one release instance with a Redis of its own (session cache on)
#   REDIS=off bench/rest.sh  # the single-instance default: no Redis, sessions checked in SQL
#
# Knobs: PG_BASE, DURATION (s per endpoint, default 15), CONNECTIONS (64), THREADS (2).
# Needs wrk (Debian: apt-get install wrk). Results: bench/results/rest-*.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${PG_BASE:-postgres://postgres@127.0.0.1:5432}
DB=tunelink_bench_rest
OUT=bench/results
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
PORT=18190
REDIS_PORT=16391
mkdir -p "$OUT"
export SQLX_OFFLINE=true RUST_LOG=${RUST_LOG:-warn} JWT_SECRET=${JWT_SECRET:-hetic}
export DATABASE_URL="$BASE/$DB" RATE_LIMITS=off
# BIN=… measures another build (for a before/after); by default, this tree's.
[ -n "${BIN:-}" ] || cargo build -q --release --bin tunelink
BIN=${BIN:-target/release/tunelink}
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
  redis-cli -p $REDIS_PORT shutdown nosave >/dev/null 2>&1 || true
}
trap cleanup EXIT

psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
"$BIN" migrate >/dev/null
"$BIN" seed --users 1000 --events 2000 --conversations 200 >/dev/null

REDIS_URL=
if [ "${REDIS:-on}" != off ]; then
  redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --logfile "$PWD/$OUT/rest-redis.log"
  REDIS_URL=redis://127.0.0.1:$REDIS_PORT
fi
BIND_ADDR=127.0.0.1:$PORT REDIS_URL=$REDIS_URL DATABASE_MAX_CONNECTIONS=20 "$BIN" \
  >"$OUT/rest-server.log" 2>&1 &
SERVER=$!
URL=http://127.0.0.1:$PORT
for _ in $(seq 1 100); do curl -fsS "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

# A user of our own, a conversation with 100 messages, and ids to read.
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
register() {
  curl -fsS -H 'content-type: application/json' "$URL/api/v1/auth/register" \
    -d "{\"username\":\"$1\",\"email\":\"$1@example.com\",\"password\":\"password-of-$1\"}"
}
TOKEN=$(register bencher | json "['data']['access_token']")
OTHER=$(register benchmate | json "['data']['user']['id']")
AUTH="Authorization: Bearer $TOKEN"
CONV=$(curl -fsS -H "$AUTH" -H 'content-type: application/json' "$URL/api/v1/conversations" \
  -d "{\"participant_ids\":[\"$OTHER\"]}" | json "['data']['id']")
for i in $(seq 1 100); do
  curl -fsS -o /dev/null -H "$AUTH" -H 'content-type: application/json' \
    "$URL/api/v1/conversations/$CONV/messages" -d "{\"body\":\"message $i\"}"
done
USER=$(psql "$DATABASE_URL" -tAc "SELECT id FROM users WHERE username LIKE 'musician%' ORDER BY id LIMIT 1")
# 20 more conversations (groups with two seeded musicians), one message each: a page of
# the conversation list shows 21, each with its last message and unread count.
psql "$DATABASE_URL" -tAc "SELECT id FROM users WHERE username LIKE 'musician%' ORDER BY id OFFSET 1 LIMIT 40" |
  paste -d' ' - - | while read -r a b; do
    c=$(curl -fsS -H "$AUTH" -H 'content-type: application/json' "$URL/api/v1/conversations" \
      -d "{\"participant_ids\":[\"$a\",\"$b\"],\"title\":\"band $a\"}" | json "['data']['id']")
    curl -fsS -o /dev/null -H "$AUTH" -H 'content-type: application/json' \
      "$URL/api/v1/conversations/$c/messages" -d '{"body":"hello"}'
  done
EVENT=$(psql "$DATABASE_URL" -tAc "SELECT id FROM events ORDER BY id LIMIT 1")

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
pg_ticks() {
  local t=0
  for p in $(pgrep -f "postgres: .* $DB" || true); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo $t
}
commits() { psql "$BASE/postgres" -tAc "SELECT xact_commit FROM pg_stat_database WHERE datname = '$DB'"; }
HZ=$(getconf CLK_TCK)

run() { # NAME PATH [SCRIPT [HEADER]]: a wrk Lua script for writes (no warm-up: it has state)
  local name=$1 path=$2 script=${3:-} extra=${4:-} file="$OUT/rest-$1.txt"
  local args=(-H "$AUTH")
  [ -z "$extra" ] || args+=(-H "$extra")
  [ -z "$script" ] || args+=(-s "$script")
  [ -n "$script" ] || wrk -t2 -c16 -d2s "${args[@]}" "$URL$path" >/dev/null # warm up
  local s0 p0 c0
  s0=$(ticks "$SERVER"); p0=$(pg_ticks); c0=$(commits)
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "${args[@]}" "$URL$path" >"$file"
  local s1 p1 c1 reqs rps p99
  s1=$(ticks "$SERVER"); p1=$(pg_ticks); c1=$(commits)
  reqs=$(awk '/requests in/ {print $1}' "$file")
  rps=$(awk '/Requests\/sec/ {print $2}' "$file")
  p99=$(awk '$1 == "99%" {print $2}' "$file")
  awk -v n="$name" -v rps="$rps" -v p99="$p99" -v s=$((s1 - s0)) -v p=$((p1 - p0)) \
    -v c=$((c1 - c0)) -v r="$reqs" -v hz="$HZ" -v d="$DURATION" -v e="$(grep -c 'Non-2xx' "$file" || true)" \
    -v kb="$(awk '/Transfer\/sec/ {print $2}' "$file")" \
    'BEGIN { printf "%-22s %10s req/s  p99 %8s  server %.2f core  postgres %.2f core  %.2f transactions/request  %s/s%s\n",
             n, rps, p99, s / hz / d, p / hz / d, c / r, kb, (e > 0 ? "  (NON-2xx answers!)" : "") }'
}

# Writes. Messages: one conversation, back to back. Participations: every request a new
# (musician, event) pair: 32 musicians of our own split between wrk's threads, over 3,000
# events open to any instrument (no capacity), so that none answers 409.
lua() { python3 -c 'import sys; print("{" + ",".join("\"%s\"" % l for l in sys.stdin.read().split()) + "}")'; }
cat >"$OUT/rest-messages.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"body":"a benchmark message of a usual length, about sixty bytes"}'
wrk.headers["Content-Type"] = "application/json"
LUA
JOINERS=$(for i in $(seq 1 32); do register "joiner$i" | json "['data']['access_token']"; done | lua)
psql "$DATABASE_URL" -qc "INSERT INTO events (creator_id, title, type, starts_at, ends_at, address, latitude, longitude)
  SELECT (SELECT id FROM users WHERE username LIKE 'musician%' ORDER BY id LIMIT 1), 'open jam ' || g, 'jam',
         now() + interval '10 days', now() + interval '10 days 3 hours', 'Lyon', 45.76, 4.83
  FROM generate_series(1, 3000) g"
OPEN_EVENTS=$(psql "$DATABASE_URL" -tAc "SELECT id FROM events WHERE title LIKE 'open jam %'" | lua)
INSTRUMENT=$(psql "$DATABASE_URL" -tAc "SELECT id FROM instruments ORDER BY name LIMIT 1")
cat >"$OUT/rest-participations.lua" <<LUA
local tokens = $JOINERS
local events = $OPEN_EVENTS
local threads = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
local i = 0
function request()
  local per = #tokens / $THREADS
  local user = tokens[tid + $THREADS * (i % per) + 1]
  local event = events[math.floor(i / per) + 1]
  i = i + 1
  return wrk.format("POST", "/api/v1/events/" .. event .. "/participations",
    {["Authorization"] = "Bearer " .. user, ["Content-Type"] = "application/json"},
    '{"instrument_id":"$INSTRUMENT"}')
end
LUA

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r);" \
  "commit $(git rev-parse --short HEAD); $(date -u +%F); redis ${REDIS:-on}; wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s"
run users_get "/api/v1/users/$USER"
run events_get "/api/v1/events/$EVENT"
run events_search "/api/v1/events?lat=48.8566&lon=2.3522&radius_km=25&limit=20"
run messages_page "/api/v1/conversations/$CONV/messages?limit=50"
run users_me "/api/v1/users/me"
run conversations_list "/api/v1/conversations?limit=50"
run events_page_100 "/api/v1/events?limit=100"
run events_page_100_gzip "/api/v1/events?limit=100" "" "Accept-Encoding: gzip"
run messages_post "/api/v1/conversations/$CONV/messages" "$OUT/rest-messages.lua"
run participations_post "/api/v1/events" "$OUT/rest-participations.lua"
