#!/usr/bin/env bash
# Abuse benchmark (issue 15): one address attacks (19,000 idle connections, 5,000
# unauthenticated sockets, 500 slow-header connections, a 40-way 500 km search flood from
# one account) while a normal client from another address logs in, searches and chats.
# Default limits; the server runs as in production (release build, `ulimit -n` 65536).
# Seeds 5,000 musicians so that a 500 km search costs what it does in a real city.
#
#   bench/abuse.sh                      # PHASE=20 (seconds per phase), PHASES=idle,sockets,slow,search
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${PG_BASE:-postgres://postgres@127.0.0.1:5432}
DB=tunelink_bench_abuse
PORT=${PORT:-18093}
export SQLX_OFFLINE=true
cargo build -q --release -p tunelink
BIN=${BIN:-target/release/tunelink}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
DATABASE_URL="$BASE/$DB" RUST_LOG=warn "$BIN" seed --users 5000 --events 2000 --conversations 100 --seed 42
DATABASE_URL="$BASE/$DB" BIND_ADDR="127.0.0.1:$PORT" RUST_LOG=warn LOG_FORMAT=json "$BIN" serve &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 60); do curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
echo "### $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD), $(nproc) cores"
python3 bench/abuse.py --port "$PORT" --phase "${PHASE:-20}" --phases "${PHASES:-idle,sockets,slow,search}"
echo "### server RSS after: $(ps -o rss= -p $SERVER) KiB"
