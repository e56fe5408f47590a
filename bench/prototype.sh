#!/usr/bin/env bash
# Side-by-side REST benchmark (issue 20): TuneLink against its first prototype, a FastAPI app
# (github.com/hananeYaya/tuneLink-backend, commit 4af0b77), on the reads both have. The
# prototype's code stays out of this repository (licence): point PROTOTYPE_DIR at a checkout.
#
#   git clone https://github.com/hananeYaya/tuneLink-backend && git -C tuneLink-backend checkout 4af0b77
#   PROTOTYPE_DIR=$PWD/tuneLink-backend bench/prototype.sh
#
# Both get the data of bench/rest.sh (`tunelink seed --users 1000 --events 2000
# --conversations 200`, plus two accounts of our own with a conversation of 100 messages; the
# prototype's through bench/prototype_seed.py), both servers run at once, and each endpoint is
# measured on one then on the other, back to back, with the same wrk command: closed loop
# `wrk -t2 -c64 --latency --timeout 30s` (the prototype's event list takes seconds per answer
# at 64 clients, past wrk's default 2 s timeout, which would drop those answers from the
# latencies). CPU: user+system seconds over each run of the server's processes (uvicorn's
# supervisor and its 2 workers; TuneLink's one process), of the whole PostgreSQL cluster (every
# postgres process, and those that ended during the run, through the postmaster that reaped
# them) and of the rest of the machine (less wrk): another database user busy at the same time
# (tests, a fuzzer) counts in PostgreSQL's CPU, and any other process in the last column.
#
# The prototype's connection pool is widened to CONNECTIONS/2 per worker (64 connections for
# both, with TuneLink's 20 within PostgreSQL's 100). As written (5 + 10 per process) it stalls
# at 64 clients: a request keeps its connection until FastAPI has validated its answer in the
# thread pool, whose 40 threads are all taken by requests waiting for a connection, until
# SQLAlchemy's 30 s timeout answers 500 (see bench/prototype_seed.py);
# PROTOTYPE_POOL=as-written measures it so, stalls included.
#
# Knobs: PG_BASE, DURATION (s per endpoint and side, default 10), CONNECTIONS (64), THREADS (2),
# REDIS (on|off: TuneLink's session cache, as bench/rest.sh), BIN (a tunelink build; default:
# this tree's release build), PROTOTYPE_POOL (widened|as-written), PYTHON (python3.11),
# PROTOTYPE_VENV. Needs wrk (Debian: apt-get install wrk), redis-server and Python 3.11.
# Results: bench/results/prototype-<date>.txt, and the wrk outputs beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PROTOTYPE_DIR:?set PROTOTYPE_DIR to a checkout of the prototype at 4af0b77 (see the header)}"
PROTO=$(cd "$PROTOTYPE_DIR/backend" && pwd)
ROOT=$PWD
BENCH=$ROOT/bench
BASE=${PG_BASE:-postgres://postgres@127.0.0.1:5432}
PDB=tunelink_bench_prototype_py # the prototype's database
TDB=tunelink_bench_prototype    # TuneLink's
OUT=bench/results
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
PYTHON=${PYTHON:-python3.11}
JWT_SECRET=${JWT_SECRET:-hetic}
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk is missing (Debian: apt-get install wrk)" >&2; exit 1; }
STARTED=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The prototype's virtualenv: its pinned requirements, one per requirements file. Every pin
# installs here (Python 3.11, x86_64): none is dropped. One unpinned dependency is held back:
# passlib[bcrypt]==1.7.4 pulls in the newest bcrypt, and bcrypt 5 refuses passlib's start-up
# self-test (a 255-byte password: "password cannot be longer than 72 bytes"), so every hash
# and login answers 500; bcrypt < 4.1 is the last series passlib 1.7.4 reads cleanly.
REQS=$PROTO/requirements.txt
VENV=${PROTOTYPE_VENV:-$HOME/.cache/tunelink-bench/prototype-venv-$(sha256sum "$REQS" | cut -c1-12)}
if [ ! -e "$VENV/.complete" ]; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  echo 'bcrypt<4.1' >"$VENV/constraints.txt"
  "$VENV/bin/pip" install -q -r "$REQS" -c "$VENV/constraints.txt"
  touch "$VENV/.complete"
fi

[ -n "${BIN:-}" ] || SQLX_OFFLINE=true cargo build -q --release --bin tunelink
BIN=${BIN:-target/release/tunelink}

descendants() { local c; for c in $(pgrep -P "$1" || true); do echo "$c"; descendants "$c"; done; }
stop() { # PID: TERM to it and its descendants, KILL what is left after 5 s
  local pids p
  pids="$1 $(descendants "$1")"
  kill $pids 2>/dev/null || true
  for _ in $(seq 1 50); do
    for p in $pids; do kill -0 "$p" 2>/dev/null && break; p=; done
    [ -z "$p" ] && return 0
    sleep 0.1
  done
  kill -9 $pids 2>/dev/null || true
}
PSERVER= TSERVER= REDIS_PORT=
TMP=$(mktemp -d)
cleanup() {
  [ -z "$PSERVER" ] || stop "$PSERVER"
  [ -z "$TSERVER" ] || stop "$TSERVER"
  [ -z "$REDIS_PORT" ] || redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $PDB WITH (FORCE)" \
    -c "DROP DATABASE IF EXISTS $TDB WITH (FORCE)" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# --- The prototype -------------------------------------------------------------------------
# Its config reads DATABASE_URL and SECRET_KEY from the environment (app/config.py; its
# backend/.env, loaded with python-dotenv, does not override them), but app/database.py builds
# its engine from a hard-coded URL (host `db`, database `mobile_musician`), so
# bench/prototype_seed.py points the prototype's session factory at DATABASE_URL. Schema: its
# models' Base.metadata.create_all, not its alembic migrations, which cannot build a database
# from scratch (the first revision adds a column to a `users` table no revision creates).
psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $PDB WITH (FORCE)" -c "CREATE DATABASE $PDB"
export DATABASE_URL="postgresql://${BASE#*://}/$PDB" SECRET_KEY=$JWT_SECRET
SEEDED=$(cd "$PROTO" && PYTHONPATH=$PROTO "$VENV/bin/python" "$BENCH/prototype_seed.py" \
  --users 1000 --events 2000 --conversations 200 2>"$ROOT/$OUT/prototype-seed.log")
read -r _ P_CONV <<<"$SEEDED" # the bench user's id, the id of its conversation of 100 messages
P_PORT=$(free_port)
POOL=${PROTOTYPE_POOL:-widened}
[ "$POOL" = as-written ] || export PROTOTYPE_POOL_SIZE=$(((CONNECTIONS + 1) / 2))
(cd "$PROTO" && PYTHONPATH=$PROTO exec "$VENV/bin/uvicorn" --app-dir "$BENCH" prototype_seed:app \
  --host 127.0.0.1 --port "$P_PORT" --workers 2 --no-access-log --log-level warning) \
  >"$OUT/prototype-py-server.log" 2>&1 &
PSERVER=$!
unset DATABASE_URL SECRET_KEY PROTOTYPE_POOL_SIZE
P_URL=http://127.0.0.1:$P_PORT
for _ in $(seq 1 100); do curl -fsS "$P_URL/" >/dev/null 2>&1 && break; sleep 0.2; done
# Its reads need no token; it is taken through its API all the same (OAuth2 password form),
# and sent, as TuneLink's side sends its own.
P_TOKEN=$(curl -fsS "$P_URL/api/v1/auth/login" -d 'username=bencher@example.com&password=tunelink-seed' |
  json "['access_token']")
P_USER=$(psql "$BASE/$PDB" -tAc "SELECT id FROM users WHERE username LIKE 'musician%' ORDER BY id LIMIT 1")
P_EVENT=$(psql "$BASE/$PDB" -tAc "SELECT id FROM events ORDER BY id LIMIT 1")

# --- TuneLink, as bench/rest.sh sets it up -------------------------------------------------
psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $TDB WITH (FORCE)"
export SQLX_OFFLINE=true RUST_LOG=${RUST_LOG:-warn} JWT_SECRET RATE_LIMITS=off
export DATABASE_URL="$BASE/$TDB"
"$BIN" migrate >/dev/null
"$BIN" seed --users 1000 --events 2000 --conversations 200 >/dev/null
REDIS_URL=
if [ "${REDIS:-on}" != off ]; then
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --logfile "$PWD/$OUT/prototype-redis.log"
  REDIS_URL=redis://127.0.0.1:$REDIS_PORT
fi
T_PORT=$(free_port)
BIND_ADDR=127.0.0.1:$T_PORT REDIS_URL=$REDIS_URL DATABASE_MAX_CONNECTIONS=20 "$BIN" \
  >"$OUT/prototype-tl-server.log" 2>&1 &
TSERVER=$!
T_URL=http://127.0.0.1:$T_PORT
for _ in $(seq 1 100); do curl -fsS "$T_URL/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
register() {
  curl -fsS -H 'content-type: application/json' "$T_URL/api/v1/auth/register" \
    -d "{\"username\":\"$1\",\"email\":\"$1@example.com\",\"password\":\"password-of-$1\"}"
}
T_TOKEN=$(register bencher | json "['data']['access_token']")
OTHER=$(register benchmate | json "['data']['user']['id']")
T_CONV=$(curl -fsS -H "Authorization: Bearer $T_TOKEN" -H 'content-type: application/json' \
  "$T_URL/api/v1/conversations" -d "{\"participant_ids\":[\"$OTHER\"]}" | json "['data']['id']")
for i in $(seq 1 100); do
  curl -fsS -o /dev/null -H "Authorization: Bearer $T_TOKEN" -H 'content-type: application/json' \
    "$T_URL/api/v1/conversations/$T_CONV/messages" -d "{\"body\":\"message $i\"}"
done
T_USER=$(psql "$DATABASE_URL" -tAc "SELECT id FROM users WHERE username LIKE 'musician%' ORDER BY id LIMIT 1")
T_EVENT=$(psql "$DATABASE_URL" -tAc "SELECT id FROM events ORDER BY id LIMIT 1")

# --- Measuring -----------------------------------------------------------------------------
HZ=$(getconf CLK_TCK)
ticks() { # PID [children]: utime+stime (+ cutime+cstime of its reaped children)
  local f='$12 + $13'
  [ "${2:-}" != children ] || f='$12 + $13 + $14 + $15'
  awk "{ sub(/.*\\) /, \"\"); print $f }" "/proc/$1/stat" 2>/dev/null || echo 0
}
tree_ticks() { local t=0 p; for p in $1 $(descendants "$1"); do t=$((t + $(ticks "$p"))); done; echo $t; }
PG_MASTER=$(awk '{ sub(/.*\) /, ""); print $2 }' "/proc/$(psql "$BASE/postgres" -tAc \
  "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")/stat")
pg_ticks() { # every process of the cluster, and the backends that ended (in the postmaster's cutime)
  local t p
  t=$(ticks "$PG_MASTER" children)
  for p in $(pgrep -P "$PG_MASTER" || true); do t=$((t + $(ticks "$p"))); done
  echo $t
}
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; } # the whole machine
TIMES=$TMP/times
children_ticks() { # the CPU of this shell's finished children; not in a $(…), whose `times` is its own
  times >"$TIMES"
  awk -v hz="$HZ" 'NR == 2 { split($0, f, /[ms ]+/); printf "%d ", (f[1] * 60 + f[2] + f[3] * 60 + f[4]) * hz + 0.5 }' \
    "$TIMES" >>"$TIMES.ticks"
}
errors_logged() { # SIDE: errors in the server's log so far
  if [ "$1" = py ]; then grep -c 'Exception in ASGI application' "$OUT/prototype-py-server.log" || true
  else grep -cE ' ERROR |"level":"ERROR"' "$OUT/prototype-tl-server.log" || true; fi
}
drain() { # waits (60 s at most) until neither server has used CPU for half a second: requests
  local a b i    # left over by the last run (wrk leaves some in flight) must not load the next
  for i in $(seq 1 120); do
    a=$(($(tree_ticks "$PSERVER") + $(tree_ticks "$TSERVER"))); sleep 0.5
    b=$(($(tree_ticks "$PSERVER") + $(tree_ticks "$TSERVER")))
    [ $((b - a)) -gt $((HZ / 50)) ] || return 0
  done
}

# SIDE NAME PATH: warm-up, then the run; writes the wrk output to prototype-SIDE-NAME.txt and
# prints "req/s p99 requests server-CPU-s postgres-CPU-s others-CPU-s problems", CPU in
# seconds over the run ("others": the rest of the machine's busy time, less wrk's own).
run() {
  local side=$1 name=$2 path=$3 server url token file="$OUT/prototype-$1-$2.txt"
  if [ "$side" = py ]; then server=$PSERVER url=$P_URL token=$P_TOKEN
  else server=$TSERVER url=$T_URL token=$T_TOKEN; fi
  local args=(-H "Authorization: Bearer $token" --timeout 30s)
  curl -fsS -o /dev/null -H "Authorization: Bearer $token" "$url$path" # answers 200, or stop
  wrk -t2 -c16 -d2s "${args[@]}" "$url$path" >/dev/null # warm up
  drain
  local e0 s0 p0 m0 w0 e1 s1 p1 m1 w1
  e0=$(errors_logged "$side"); s0=$(tree_ticks "$server"); p0=$(pg_ticks); m0=$(busy_ticks)
  : >"$TIMES.ticks"; children_ticks
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "${args[@]}" "$url$path" >"$file"
  children_ticks; read -r w0 w1 <"$TIMES.ticks"
  s1=$(tree_ticks "$server"); p1=$(pg_ticks); m1=$(busy_ticks); e1=$(errors_logged "$side")
  drain
  local problems # wrk prints these lines only when there are some
  problems=$(awk -v e=$((e1 - e0)) '/Non-2xx/ {o = o "non-2xx answers: " $NF "; "}
    /Socket errors/ {sub(/^ */, ""); o = o tolower($0) "; "}
    END {if (e > 0) o = o e " errors logged"; sub(/; $/, "", o); print o}' "$file")
  echo "$(awk '/Requests\/sec/ {print $2}' "$file") $(awk '$1 == "99%" {print $2}' "$file")" \
    "$(awk '/requests in/ {print $1}' "$file")" \
    "$(awk -v s=$((s1 - s0)) -v p=$((p1 - p0)) -v m=$((m1 - m0)) -v w=$((w1 - w0)) -v hz="$HZ" \
      'BEGIN {o = m - s - p - w; printf "%.1f %.1f %.1f", s / hz, p / hz, (o > 0 ? o : 0) / hz}')" \
    "${problems:--}"
}

# endpoint | prototype path | TuneLink path. The prototype's lists have no pagination: its
# event list answers all 2,000 events (TuneLink: a page of 100, its maximum), its history all
# 100 messages (TuneLink: limit=100, the same 100).
ENDPOINTS=(
  "user by id|/api/v1/users/$P_USER|/api/v1/users/$T_USER"
  "event by id|/api/v1/events/$P_EVENT|/api/v1/events/$T_EVENT"
  "event list|/api/v1/events/|/api/v1/events?limit=100"
  "100 messages|/api/v1/messaging/conversations/$P_CONV/messages|/api/v1/conversations/$T_CONV/messages?limit=100"
)
ROWS=()
for e in "${ENDPOINTS[@]}"; do
  IFS='|' read -r name ppath tpath <<<"$e"
  slug=${name// /_}
  py=$(run py "$slug" "$ppath") # prototype first, then TuneLink: back to back, same load
  tl=$(run tl "$slug" "$tpath")
  ROWS+=("$name|$py|$tl")
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
P_BYTES=$(curl -fsS -o /dev/null -w '%{size_download}' "$P_URL/api/v1/events/")
T_BYTES=$(curl -fsS -o /dev/null -w '%{size_download}' -H "Authorization: Bearer $T_TOKEN" \
  "$T_URL/api/v1/events?limit=100")

RESULT=$OUT/prototype-$(date -u +%F).txt
{
  echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r);" \
    "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' with changes to src');" \
    "$(date -u '+%F %H:%M') UTC; load average $LOAD_BEFORE before, $LOAD_AFTER after; redis ${REDIS:-on}"
  echo "prototype: github.com/hananeYaya/tuneLink-backend $(git -C "$PROTOTYPE_DIR" rev-parse --short HEAD 2>/dev/null ||
    echo '(not a git checkout)'), uvicorn --workers 2, connection pool $POOL$([ "$POOL" = as-written ] ||
    echo " ($(((CONNECTIONS + 1) / 2)) per worker)")"
  echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency --timeout 30s per endpoint, prototype first;" \
    "CPU: seconds over the run of the server / PostgreSQL / other processes (a busy machine shows in the third: numbers taken so are not final)"
  echo
  printf '%-13s | %-39s | %-39s | %s\n' endpoint "prototype: req/s, p99, CPU s" "TuneLink: req/s, p99, CPU s" \
    "TuneLink: req/s ×, CPU per request ÷"
  printf '%.0s-' $(seq 1 133); echo
  NOTES=()
  for r in "${ROWS[@]}"; do
    IFS='|' read -r name py tl <<<"$r"
    read -r prps pp99 preq ps pp po pprob <<<"$py"
    read -r trps tp99 treq ts tp to tprob <<<"$tl"
    awk -v n="$name" -v prps="$prps" -v pp99="$pp99" -v preq="$preq" -v ps="$ps" -v pp="$pp" -v po="$po" \
      -v trps="$trps" -v tp99="$tp99" -v treq="$treq" -v ts="$ts" -v tp="$tp" -v to="$to" 'BEGIN {
        r = "-"; c = "-"
        if (prps > 0 && preq > 0 && treq > 0) {
          r = sprintf("×%.1f", trps / prps); c = sprintf("÷%.1f", ((ps + pp) / preq) / ((ts + tp) / treq))
        }
        if (preq == 0) pp99 = "-"
        printf "%-13s | %9.1f %9s %5.1f/%5.1f/%5.1f | %9.1f %9s %5.1f/%5.1f/%5.1f | %-7s  %s\n",
          n, prps, pp99, ps, pp, po, trps, tp99, ts, tp, to, r, c }'
    [ "$pprob" = - ] || NOTES+=("$name, prototype: $pprob")
    [ "$tprob" = - ] || NOTES+=("$name, TuneLink: $tprob")
    [ "$name" != "event list" ] || EVENTS_PER_S=$(awk -v p="$prps" -v t="$trps" 'BEGIN {
      printf "%.0f events/s against %.0f", t * 100, p * 2000; if (p > 0) printf ": ×%.1f", t * 100 / (p * 2000) }')
  done
  echo
  echo "event list: the prototype answers all 2,000 events ($P_BYTES bytes), TuneLink a page of 100" \
    "($T_BYTES bytes); per event served, TuneLink $EVENTS_PER_S."
  for n in "${NOTES[@]}"; do echo "$n"; done
  echo "run took $(($(date +%s) - STARTED)) s; wrk outputs in $OUT/prototype-{py,tl}-*.txt"
} | tee "$RESULT"
