#!/usr/bin/env bash
# Real-time benchmarks (issue 6), each against fresh release servers and a fresh database:
#
#   bench/realtime.sh idle     # 1. one instance holds 19,000 idle sockets for 60 s; memory
#   bench/realtime.sh groups   # 2. 10,000 sockets, 200 groups of 50, 2,000 messages/s, 60 s
#   bench/realtime.sh groups2  # 3. the same over two instances sharing PostgreSQL and Redis
#   bench/realtime.sh dm       # 4. 10,000 sockets in 5,000 direct conversations, 5,000 msg/s
#   bench/realtime.sh burst    # 5. scenario 2 during 100 logins/s
#   bench/realtime.sh chaos    # 6. two instances, own Redis restarted, one instance killed,
#                              #    random disconnects: nothing lost, duplicated or reordered
#   bench/realtime.sh all
#
# Results (JSON) go to bench/results/. Knobs: PG_BASE, RATE, DURATION, USERS, GROUP.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${PG_BASE:-postgres://postgres@127.0.0.1:5432}
DB=tunelink_bench_rt
OUT=bench/results
DURATION=${DURATION:-60}
mkdir -p "$OUT"
export SQLX_OFFLINE=true RUST_LOG=${RUST_LOG:-warn} JWT_SECRET=${JWT_SECRET:-hetic}
export DATABASE_URL="$BASE/$DB"
cargo build -q --release --workspace
BIN=target/release/tunelink
LOAD=target/release/tunelink-load
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
STATUS=0

fresh_db() {
  psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
  "$BIN" migrate >/dev/null
}

# start_server PORT [REDIS_URL]: sets SERVER_PID
start_server() {
  while ss -ltn "sport = :$1" | grep -q LISTEN; do sleep 0.5; done # a previous run's, exiting
  # The load tool's thousands of sockets come from one or two loopback addresses: the
  # per-address cap (an abuse guard, bench/abuse.sh) is lifted for it.
  CONNECTION_MAX_PER_ADDRESS=${CONNECTION_MAX_PER_ADDRESS:-100000} \
  BIND_ADDR="127.0.0.1:$1" REDIS_URL="${2:-}" DATABASE_MAX_CONNECTIONS=${DB_CONNECTIONS:-20} \
    "$BIN" >"$OUT/server-$1.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
}

stop_servers() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.2; done; done
  PIDS=()
}

machine() {
  echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r);" \
    "commit $(git rev-parse --short HEAD); $(date -u +%F)"
}

fixture() { # USERS GROUP FILE
  "$BIN" load-fixture --users "$1" --group-size "$2" --out "$3"
}

idle() {
  echo "## 1. idle sockets"; machine
  fresh_db
  fixture "${USERS:-19000}" 0 "$OUT/fixture-idle.json"
  start_server 18090
  "$LOAD" connect --fixture "$OUT/fixture-idle.json" --url http://127.0.0.1:18090 \
    --source 127.0.0.1,127.0.0.2 --ramp "${RAMP:-1000}" --hold "$DURATION" --server-pid "$SERVER_PID" \
    --out "$OUT/idle.json" || STATUS=1
  stop_servers
}

groups() { # [extra chat args]
  fresh_db
  fixture "${USERS:-10000}" "${GROUP:-50}" "$OUT/fixture-groups.json"
  start_server 18090
  "$LOAD" chat --fixture "$OUT/fixture-groups.json" --url http://127.0.0.1:18090 \
    --rate "${RATE:-2000}" --duration "$DURATION" --ramp 1000 "$@" || STATUS=1
  echo "messages in PostgreSQL: $(psql "$DATABASE_URL" -tAc 'SELECT count(*) FROM messages')"
  stop_servers
}

groups2() {
  echo "## 3. two instances"; machine
  fresh_db
  fixture "${USERS:-10000}" "${GROUP:-50}" "$OUT/fixture-groups.json"
  start_server 18090 redis://127.0.0.1:6379
  start_server 18091 redis://127.0.0.1:6379
  "$LOAD" chat --fixture "$OUT/fixture-groups.json" \
    --url http://127.0.0.1:18090,http://127.0.0.1:18091 \
    --rate "${RATE:-2000}" --duration "$DURATION" --ramp 1000 --out "$OUT/groups2.json" || STATUS=1
  echo "messages in PostgreSQL: $(psql "$DATABASE_URL" -tAc 'SELECT count(*) FROM messages')"
  stop_servers
}

dm() {
  echo "## 4. direct messages"; machine
  fresh_db
  fixture "${USERS:-10000}" 2 "$OUT/fixture-dm.json"
  start_server 18090
  "$LOAD" chat --fixture "$OUT/fixture-dm.json" --url http://127.0.0.1:18090 \
    --rate "${RATE:-5000}" --duration "$DURATION" --ramp 1000 --out "$OUT/dm.json" || STATUS=1
  echo "messages in PostgreSQL: $(psql "$DATABASE_URL" -tAc 'SELECT count(*) FROM messages')"
  stop_servers
}

burst() {
  echo "## 5. scenario 2 during a login burst"; machine
  fresh_db
  fixture "${USERS:-10000}" "${GROUP:-50}" "$OUT/fixture-groups.json"
  # Every login comes from this one address: lift the per-address limit (the per-name one
  # stays, and the fixture has 10,000 names).
  RATE_LIMIT_LOGIN_PER_IP=off start_server 18090
  # The logins start once the sockets are open and sending has begun.
  (sleep 20 && "$LOAD" login --fixture "$OUT/fixture-groups.json" --url http://127.0.0.1:18090 \
    --rate 100 --duration $((DURATION - 10)) --out "$OUT/burst-login.json") &
  local login=$!
  "$LOAD" chat --fixture "$OUT/fixture-groups.json" --url http://127.0.0.1:18090 \
    --rate "${RATE:-2000}" --duration "$DURATION" --ramp 1000 --out "$OUT/burst-chat.json" || STATUS=1
  wait "$login"
  stop_servers
}

chaos() {
  echo "## 6. chaos: two instances, a Redis restart, an instance killed"; machine
  fresh_db
  fixture "${USERS:-2000}" "${GROUP:-10}" "$OUT/fixture-chaos.json"
  # A Redis of this run's own, so that stopping it disturbs nothing else.
  local port=16390
  redis-server --port $port --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --pidfile "/tmp/tunelink-chaos-redis.pid" --logfile "$PWD/$OUT/chaos-redis.log"
  sleep 0.5
  start_server 18090 "redis://127.0.0.1:$port"
  start_server 18091 "redis://127.0.0.1:$port"
  local victim=$SERVER_PID
  "$LOAD" chat --chaos --fixture "$OUT/fixture-chaos.json" \
    --url http://127.0.0.1:18090,http://127.0.0.1:18091 \
    --rate "${RATE:-200}" --duration "$DURATION" --ramp 500 \
    --chaos-disconnects-per-s "${DISCONNECTS:-20}" \
    --chaos-redis-stop-cmd "redis-cli -p $port shutdown nosave" \
    --chaos-redis-start-cmd "redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no --daemonize yes --logfile $PWD/$OUT/chaos-redis.log" \
    --chaos-kill-pid "$victim" \
    --out "$OUT/chaos.json" || STATUS=1
  echo "messages in PostgreSQL: $(psql "$DATABASE_URL" -tAc 'SELECT count(*) FROM messages')"
  stop_servers
  redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true
}

case "${1:-all}" in
  idle) idle ;;
  groups) echo "## 2. one instance, groups of 50"; machine; groups --out "$OUT/groups.json" ;;
  groups2) groups2 ;;
  dm) dm ;;
  burst) burst ;;
  chaos) chaos ;;
  all)
    idle
    echo "## 2. one instance, groups of 50"; machine; groups --out "$OUT/groups.json"
    groups2; dm; burst; chaos ;;
  *) echo "usage: $0 [idle|groups|groups2|dm|burst|chaos|all]" >&2; exit 2 ;;
esac
exit $STATUS
