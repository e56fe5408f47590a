#!/usr/bin/env bash
# EXPLAIN ANALYZE of musician search (GET /api/v1/users) on 50,000 musicians spread over
# France, each playing 2 instruments and liking 3 genres. Shows which index each filter uses.
#
#   bench/explain_musicians.sh            # uses postgres://postgres@127.0.0.1:5432
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${PG_BASE:-postgres://postgres@127.0.0.1:5432}
DB=tunelink_bench_musicians

psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $DB"
DATABASE_URL="$BASE/$DB" SQLX_OFFLINE=true cargo run -q --release -- migrate
psql "$BASE/$DB" -q <<'SQL'
SELECT setseed(0.42);
INSERT INTO users (username, email, password_hash, city, latitude, longitude)
SELECT 'user' || g, 'user' || g || '@example.com', 'x',
       (ARRAY['Lyon','Paris','Nantes','Lille','Marseille'])[1 + g % 5],
       42.5 + random() * 8.5, -4.5 + random() * 12.5
FROM generate_series(1, 50000) g;
INSERT INTO user_instruments (user_id, instrument_id, level)
SELECT u.id, i.id, (enum_range(NULL::skill_level))[1 + (random() * 4)::int]
FROM users u CROSS JOIN LATERAL
     (SELECT id FROM instruments ORDER BY random() + (u.id IS NULL)::int LIMIT 2) i;
INSERT INTO user_genres (user_id, genre_id)
SELECT u.id, g.id FROM users u CROSS JOIN LATERAL
     (SELECT id FROM genres ORDER BY random() + (u.id IS NULL)::int LIMIT 3) g;
ANALYZE;
SQL

QUERY=$(python3 -c "
import json, glob
for f in glob.glob('.sqlx/*.json'):
    d = json.load(open(f))
    if 'key_num' in d['query']:
        print(d['query'])")
PIANO=$(psql "$BASE/$DB" -Atc "SELECT id FROM instruments WHERE name = 'Piano'")
JAZZ=$(psql "$BASE/$DB" -Atc "SELECT id FROM genres WHERE name = 'Jazz'")
explain() {
  echo "### $1"
  psql "$BASE/$DB" -q <<SQL | grep -vE '^\s*$' | sed 's/^/    /'
SET plan_cache_mode = force_custom_plan;
PREPARE s(text, uuid, skill_level, float8, float8, float8, uuid, float8, text, uuid, int8) AS $QUERY;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) EXECUTE s($2);
SQL
}
explain "25 km around Lyon" "NULL,NULL,NULL,45.76,4.83,25000,NULL,NULL,NULL,NULL,21"
explain "text, selective (q=12345)" "'%12345%',NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,21"
explain "text, common (q=lyon)" "'%lyon%',NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,21"
explain "piano, expert or better" "NULL,'$PIANO','expert',NULL,NULL,NULL,NULL,NULL,NULL,NULL,21"
explain "piano expert + jazz + 50 km around Lyon" "NULL,'$PIANO','expert',45.76,4.83,50000,'$JAZZ',NULL,NULL,NULL,21"
explain "no filter (by name)" "NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,21"
psql "$BASE/postgres" -qc "DROP DATABASE $DB"
