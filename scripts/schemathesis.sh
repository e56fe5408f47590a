#!/usr/bin/env bash
# Fuzzes the live API with schemathesis, from its own OpenAPI document (/openapi.json).
#
# Builds the server, starts it on a fresh database and a free port, registers a user and
# an administrator, then runs schemathesis over every operation with the administrator's
# token (administrators can call every operation). Fails on any 5xx, any status code the
# document does not list, any response whose body, content type or headers break it, and
# any schema-valid request the server refuses (but for the rules between fields or on the
# data's state that OpenAPI cannot express, listed with their reasons in
# scripts/schemathesis_hooks.py), and on schemathesis's "Schema validation mismatch"
# warning (a phase in which every valid request of an operation was refused). The document's
# placeholder ids and passwords are swapped for stored ones in valid cases (the hooks).
# A second pass sends invalid data only and fails on any of it the server accepts
# (`negative_data_rejection`, but for form-encoded types and undeclared query parameters:
# see the hooks).
# The sessions-ending operations (logout, password change, deactivation or erasure) run last, in a
# second pass with a token of their own, so that they do not cut the first pass short.
#
# Needs PostgreSQL (DATABASE_BASE_URL, default postgres://postgres@127.0.0.1:5432), python3,
# curl and jq. Tunables: ST_MAX_EXAMPLES (default 60), ST_SEED, ST_WORKERS (default 1:
# with worker threads, hypothesis's ast.parse of its own sources can hit CPython 3.11's
# "AST constructor recursion depth mismatch" race, a crash of the tool, not of the API);
# ST_KEEP=<dir> keeps the server log and the generated schemathesis.toml there.
set -euo pipefail
cd "$(dirname "$0")/.."

ST_VERSION=4.32.5
VENV=${SCHEMATHESIS_VENV:-$HOME/.cache/tunelink-schemathesis-$ST_VERSION}
PG=${DATABASE_BASE_URL:-postgres://postgres@127.0.0.1:5432}
DB=tunelink_schemathesis_$$
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-60}
WORKERS=${ST_WORKERS:-1}
# Fixed seeds, so that CI is repeatable (schemathesis's warnings, which fail the run, depend
# on what a seed generates); explore others with ST_SEED=<n> / ST_NEG_SEED=<n>, or
# ST_SEED=random: any failure they find is a real disagreement to fix.
SEED=${ST_SEED:-12265}
[ "$SEED" = random ] && SEED=$RANDOM
NEG_SEED=${ST_NEG_SEED:-777}
[ "$NEG_SEED" = random ] && NEG_SEED=$RANDOM
WORK=$(mktemp -d)

log() { printf '== schemathesis: %s\n' "$*"; }

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$ST_VERSION"; then
  log "installing schemathesis $ST_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi

log "building the server"
cargo build --quiet --bin tunelink
BIN=target/debug/tunelink

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
# Rate limits off: generated requests then reach the logic behind them (the limits have
# tests of their own), and pass 2 can still log in after pass 1 fuzzed the login.
export APP_ENV=test DATABASE_URL="$PG/$DB" BIND_ADDR=127.0.0.1:$PORT JWT_SECRET=hetic RATE_LIMITS=off \
  RUST_LOG=${RUST_LOG:-warn} LOG_FORMAT=pretty
unset REDIS_URL

SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
  fi
  psql "$PG/postgres" -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  if [ -n "${ST_KEEP:-}" ]; then mkdir -p "$ST_KEEP" && cp "$WORK"/*.* "$ST_KEEP"/ 2>/dev/null; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

log "starting the server on $BASE (database $DB)"
"$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 120); do
  curl -fsS "$BASE/readyz" >/dev/null 2>&1 && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
  sleep 0.5
done
curl -fsS "$BASE/readyz" >/dev/null

# A token for `login` (username) with `password`.
token() {
  curl -fsS "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"login\": \"$1\", \"password\": \"$2\"}" | jq -er '.data.access_token'
}

log "creating accounts"
"$BIN" create-admin --username st_admin --email st_admin@example.com \
  --password 'schemathesis-admin-password' >/dev/null
curl -fsS "$BASE/api/v1/auth/register" -H 'content-type: application/json' \
  -d '{"username": "st_user", "email": "st_user@example.com", "password": "schemathesis-user-password"}' >/dev/null
ADMIN=$(token st_admin schemathesis-admin-password)
USER=$(token st_user schemathesis-user-password)

# POSTs `body` to `path` with `tok`; prints `.data.id`.
create() {
  curl -sS --fail-with-body "$BASE$2" -H "authorization: Bearer $1" -H 'content-type: application/json' \
    -d "$3" | jq -er '.data.id'
}

log "creating data for the operations that need existing ids"
USER_ID=$(curl -fsS "$BASE/api/v1/users/me" -H "authorization: Bearer $USER" | jq -er '.data.id')
INSTRUMENT=$(curl -fsS "$BASE/api/v1/instruments?limit=1" | jq -er '.data.items[0].id')
GENRE=$(curl -fsS "$BASE/api/v1/genres?limit=1" | jq -er '.data.items[0].id')
# Entries of our own for the catalogue's write operations (renamed, deleted at will).
OWN_INSTRUMENT=$(create "$ADMIN" /api/v1/instruments '{"name": "Schemathesis horn", "category": "brass"}')
OWN_GENRE=$(create "$ADMIN" /api/v1/genres '{"name": "Schemathesis core"}')
CONVERSATION=$(create "$ADMIN" /api/v1/conversations \
  "{\"participant_ids\": [\"$USER_ID\"], \"title\": \"Schemathesis band\"}")
MESSAGE=$(create "$ADMIN" "/api/v1/conversations/$CONVERSATION/messages" '{"body": "hello"}')
START=$(date -u -d '+7 days' +%Y-%m-%dT%H:00:00Z)
END=$(date -u -d '+7 days 3 hours' +%Y-%m-%dT%H:00:00Z)
EVENT=$(create "$ADMIN" /api/v1/events "{\"title\": \"Schemathesis jam\", \"type\": \"jam\",
  \"starts_at\": \"$START\", \"ends_at\": \"$END\", \"address\": \"1 rue du Test, Paris\",
  \"latitude\": 48.85, \"longitude\": 2.35}")
PARTICIPATION=$(create "$USER" "/api/v1/events/$EVENT/participations" \
  "{\"instrument_id\": \"$INSTRUMENT\"}")
# The organiser was notified of the join.
NOTIFICATION=$(curl -fsS "$BASE/api/v1/notifications?limit=1" -H "authorization: Bearer $ADMIN" \
  | jq -er '.data.items[0].id')
# Someone to block.
curl -fsS "$BASE/api/v1/auth/register" -H 'content-type: application/json' \
  -d '{"username": "st_other", "email": "st_other@example.com", "password": "schemathesis-other-password"}' >/dev/null
OTHER_ID=$(curl -fsS "$BASE/api/v1/users?q=st_other" -H "authorization: Bearer $USER" | jq -er '.data.items[0].id')
# A report to resolve, on a message of its own (resolving may delete what it reports).
REPORTED=$(create "$ADMIN" "/api/v1/conversations/$CONVERSATION/messages" '{"body": "report me"}')
REPORT=$(create "$USER" /api/v1/reports \
  "{\"target_type\": \"message\", \"target_id\": \"$REPORTED\", \"reason\": \"Schemathesis report\"}")
# Whose password pass 2 changes (st_user must still log in afterwards): same password.
curl -fsS "$BASE/api/v1/auth/register" -H 'content-type: application/json' \
  -d '{"username": "st_pw", "email": "st_pw@example.com", "password": "schemathesis-user-password"}' >/dev/null

# The document's placeholders (ids, secrets in request examples) → what was stored, for
# the hooks (valid cases only). Read from the document, not repeated here.
SPEC=$(curl -fsS "$BASE/openapi.json")
example() { jq -er "$1" <<<"$SPEC"; }
ST_STORED=$(jq -nc \
  --arg participant "$(example '.components.schemas.NewConversation.example.participant_ids[0]')" \
  --arg genre "$(example '.components.schemas.NewEvent.example.genre_ids[0]')" \
  --arg instrument "$(example '.components.schemas.NewEvent.example.instruments[0].instrument_id')" \
  --arg target "$(example '.components.schemas.NewReport.example.target_id')" \
  --arg current "$(example '.components.schemas.ChangePassword.example.current_password')" \
  --arg confirm "$(example '.components.schemas.EraseAccount.example.password')" \
  --arg user "$USER_ID" --arg g "$GENRE" --arg i "$INSTRUMENT" --arg m "$MESSAGE" \
  '{($participant): $user, ($genre): $g, ($instrument): $i, ($target): $m,
    ($current): "schemathesis-user-password", ($confirm): "schemathesis-user-password"}')
export ST_STORED ST_PASSWORD=schemathesis-user-password

# Fixed ids per operation (first match wins), so that operations on one resource reach
# real data rather than answering 404 to random ids.
CONFIG="$WORK/schemathesis.toml"
cat >"$CONFIG" <<TOML
# A valid request that every case of a phase saw refused fails the run, as a failed check
# would: the document and the server disagree.
[warnings]
fail-on = ["validation_mismatch"]

# Values that reach the logic behind operations whose valid requests otherwise all depend
# on stored data or the clock (real accounts and ids, a start in the future): without them
# every generated request is refused, and schemathesis warns of a validation mismatch.
[dictionaries.future_start]
values = ["$START"]
[dictionaries.future_end]
values = ["$END"]
[dictionaries.participants]
values = ["$USER_ID"]
[dictionaries.report_targets]
values = ["$USER_ID", "$MESSAGE", "$EVENT", "$CONVERSATION"]
[dictionaries.read_up_to]
values = [0, 1]
[dictionaries.logins]
values = ["st_user"]
[dictionaries.passwords]
values = ["schemathesis-user-password"]
[[operations]]
include-operation-id = "events_create"
parameters = { "body.starts_at" = { dictionary = "future_start" }, "body.ends_at" = { dictionary = "future_end" } }
[[operations]]
include-operation-id = "events_update"
parameters = { "path.id" = "$EVENT", "body.starts_at" = { dictionary = "future_start" }, "body.ends_at" = { dictionary = "future_end" } }
[[operations]]
include-operation-id = "conversations_create"
parameters = { "body.participant_ids[*]" = { dictionary = "participants" } }
[[operations]]
include-operation-id = "conversations_read"
parameters = { "path.id" = "$CONVERSATION", "body.seq" = { dictionary = "read_up_to" } }
[[operations]]
include-operation-id = "reports_create"
parameters = { "body.target_id" = { dictionary = "report_targets" } }
[[operations]]
include-operation-id = "blocks_put"
parameters = { "path.user_id" = "$OTHER_ID" }
[[operations]]
include-operation-id = "auth_login"
parameters = { "body.login" = { dictionary = "logins" }, "body.username" = { dictionary = "logins" }, "body.password" = { dictionary = "passwords" } }
[[operations]]
include-path-regex = '^/api/v1/conversations/\\{id\\}/participants/\\{user_id\\}\$'
parameters = { "path.id" = "$CONVERSATION", "path.user_id" = "$USER_ID" }
[[operations]]
include-path-regex = '^/api/v1/conversations/\\{id\\}'
parameters = { "path.id" = "$CONVERSATION" }
[[operations]]
include-path-regex = '^/api/v1/messages/\\{id\\}\$'
parameters = { "path.id" = "$MESSAGE" }
[[operations]]
include-path-regex = '^/api/v1/events/\\{id\\}/instruments/\\{instrument_id\\}\$'
parameters = { "path.id" = "$EVENT", "path.instrument_id" = "$INSTRUMENT" }
[[operations]]
include-path-regex = '^/api/v1/events/\\{id\\}'
parameters = { "path.id" = "$EVENT" }
[[operations]]
include-path-regex = '^/api/v1/participations/\\{id\\}\$'
parameters = { "path.id" = "$PARTICIPATION" }
[[operations]]
include-path-regex = '^/api/v1/notifications/\\{id\\}'
parameters = { "path.id" = "$NOTIFICATION" }
[[operations]]
include-path-regex = '^/api/v1/instruments/\\{id\\}\$'
parameters = { "path.id" = "$OWN_INSTRUMENT" }
[[operations]]
include-path-regex = '^/api/v1/genres/\\{id\\}\$'
parameters = { "path.id" = "$OWN_GENRE" }
[[operations]]
include-path-regex = '^/api/v1/users/me/instruments/\\{instrument_id\\}\$'
parameters = { "path.instrument_id" = "$INSTRUMENT" }
[[operations]]
include-path-regex = '^/api/v1/users/me/genres/\\{genre_id\\}\$'
parameters = { "path.genre_id" = "$GENRE" }
[[operations]]
include-path-regex = '^/api/v1/reports/\\{id\\}/resolve\$'
parameters = { "path.id" = "$REPORT" }
[[operations]]
include-path-regex = '^/api/v1/users/\\{id\\}'
parameters = { "path.id" = "$USER_ID" }
TOML

CHECKS=not_a_server_error,positive_data_acceptance_documented,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance
# Operations that end the caller's sessions: run them apart, last.
ENDING='^(auth_logout|users_me_delete|users_me_password)$'

# From the scratch directory: schemathesis keeps a cache in its working directory.
cp scripts/schemathesis_hooks.py "$WORK/"
run() {
  (cd "$WORK" && PYTHONPATH="$WORK" SCHEMATHESIS_HOOKS=schemathesis_hooks "$VENV/bin/schemathesis" --config-file "$CONFIG" run "$BASE/openapi.json" \
    --checks "$CHECKS" \
    --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" \
    --workers "$WORKERS" \
    --request-timeout 10 \
    --generation-database none \
    --suppress-health-check all \
    --no-color \
    "$@")
}

log "pass 1: every operation but the session-ending ones, as an administrator (seed $SEED)"
status=0
run -H "Authorization: Bearer $ADMIN" --exclude-operation-id-regex "$ENDING" || status=$?
log "pass 2: the same operations with invalid data only: every request the document calls invalid is refused (seed $NEG_SEED)"
SEED=$NEG_SEED run -H "Authorization: Bearer $ADMIN" --exclude-operation-id-regex "$ENDING" \
  --mode negative --checks not_a_server_error,negative_data_rejection_documented || status=$?
log "pass 3: the session-ending operations, as a user, each with a fresh session, valid and invalid data"
for op in users_me_password auth_logout users_me_delete; do
  who=st_user
  [ "$op" = users_me_password ] && who=st_pw
  USER=$(token $who schemathesis-user-password)
  run -H "Authorization: Bearer $USER" --include-operation-id "$op" \
    --mode all --checks "$CHECKS,negative_data_rejection_documented" || status=$?
done

if [ "$status" -ne 0 ]; then
  log "FAILED (server log below)"
  grep -E 'ERROR|panicked' "$WORK/server.log" | tail -50 || true
  exit "$status"
fi
log "passed"
