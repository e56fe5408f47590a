#!/usr/bin/env bash
# Socket.IO 4 side by side with TuneLink's real-time numbers (issue 13): the same shape as
# bench/realtime.sh groups (sockets in rooms of 50, an open-loop send rate), against a
# Socket.IO server with no persistence and no auth. Node 20 and npm needed.
#
#   bench/socketio.sh        # one instance
#   bench/socketio.sh two    # two instances sharing rooms through Redis (REDIS_URL)
#
# Knobs: RATES (msg/s, default "500 1000 2000 4000"), DURATION (s per rate, 10), N (sockets,
# 2000), G (room size, 50), PROCS (client processes, 2), REDIS_URL (redis://127.0.0.1:6379).
# A fresh server per rate. Results (JSON): bench/results/socketio[-two]-<rate>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-one}
RATES=${RATES:-"500 1000 2000 4000"}
DURATION=${DURATION:-10}
N=${N:-2000}
G=${G:-50}
PROCS=${PROCS:-2}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
OUT=bench/results
DIR=bench/socketio
PORTS=(18290 18291)
case "$MODE" in
  one) COUNT=1 TAG=socketio ;;
  two) COUNT=2 TAG=socketio-two ;;
  *) echo "usage: $0 [one|two]" >&2; exit 2 ;;
esac
case "$REDIS_URL" in redis://127.0.0.1:*) ;; *) echo "REDIS_URL must be on 127.0.0.1" >&2; exit 2 ;; esac
mkdir -p "$OUT"
# Thousands of sockets on each side; the hard limit if 65536 is refused.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ -d "$DIR/node_modules" ] || (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error)

PIDS=()
stop_servers() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  PIDS=()
}
trap stop_servers EXIT

start_server() { # PORT [REDIS_URL]
  while ss -ltn "sport = :$1" | grep -q LISTEN; do sleep 0.5; done # a previous run's, exiting
  PORT=$1 REDIS_URL=${2:-} node "$DIR/server.js" >"$OUT/$TAG-server-$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "server on :$1 did not start: $(cat "$OUT/$TAG-server-$1.log")" >&2
  exit 1
}

echo "## Socket.IO $(node -p "require('./$DIR/node_modules/socket.io/package.json').version"), $MODE instance(s), $N sockets in rooms of $G, $DURATION s a rate"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), node $(node -v);" \
  "commit $(git rev-parse --short HEAD); $(date -u '+%F %H:%M') UTC"
ROWS=()
for RATE in $RATES; do
  URLS=
  if [ "$COUNT" = 1 ]; then
    start_server "${PORTS[0]}"
    URLS=http://127.0.0.1:${PORTS[0]}
  else
    for p in "${PORTS[@]}"; do start_server "$p" "$REDIS_URL"; URLS+=${URLS:+,}http://127.0.0.1:$p; done
  fi
  PIDLIST=$(IFS=,; echo "${PIDS[*]}")
  RESULT=$OUT/$TAG-$RATE.json
  # Bounded: the ramp, settle, send, drain and a margin.
  timeout $((DURATION + N / 200 + 60)) node "$DIR/client.js" --url "$URLS" --sockets "$N" \
    --group "$G" --rate "$RATE" --duration "$DURATION" --procs "$PROCS" \
    --server-pids "$PIDLIST" --out "$RESULT" >/dev/null
  stop_servers
  ROWS+=("$(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const n = (x) => Math.round(x).toLocaleString("en-US");
    const cpu = (l) => l.map((x) => x.core_pct + "%").join(" + ");
    console.log(`| ${n(r.offered_rate_per_s)} | ${n(r.achieved_send_rate_per_s)} | ${n(r.deliveries_per_s)} | ` +
      `${r.delivery.p50_ms} | ${r.delivery.p99_ms} | ${r.unacked} | ${cpu(r.cpu.server)} | ${cpu(r.cpu.client)} |`);
  ' "$RESULT")")
done

echo
echo "| offered msg/s | achieved send/s | deliveries/s | p50 ms | p99 ms | unacked | server CPU | client CPU ($PROCS procs) |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "Deliveries count the sender too ($G a message). CPU: % of one core over the send and"
echo "drain window. Latency: send due time -> receipt, open loop."
