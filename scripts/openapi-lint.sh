#!/usr/bin/env bash
# Lints the OpenAPI document this build serves with the two linters client developers use:
# Redocly (`recommended`, .redocly.yaml) and Spectral (`spectral:oas`, .spectral.yaml).
# Any error fails; warnings are printed. The linters are pinned and installed with npm into
# target/openapi-lint (once; Node and npm are needed).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=target/openapi-lint
REDOCLY=@redocly/cli@1.34.5
SPECTRAL=@stoplight/spectral-cli@6.15.0
mkdir -p "$DIR"
if [ ! -x "$DIR/node_modules/.bin/redocly" ] || [ ! -x "$DIR/node_modules/.bin/spectral" ] ||
  ! grep -q "\"version\": \"${REDOCLY##*@}\"" "$DIR/node_modules/@redocly/cli/package.json" 2>/dev/null; then
  npm install --prefix "$DIR" --no-save --no-audit --no-fund --silent "$REDOCLY" "$SPECTRAL"
fi
# The binary `cargo test` built (same features: nothing is compiled again).
BIN_GIVEN=${BIN:-}
BIN=${BIN:-target/debug/tunelink}
[ -n "${BIN_GIVEN:-}" ] || cargo build --quiet --bin tunelink # a no-op after `cargo test`
"$BIN" openapi >"$DIR/openapi.json"
echo "Redocly:"
"$DIR/node_modules/.bin/redocly" lint --config .redocly.yaml --format stylish "$DIR/openapi.json"
echo "Spectral:"
"$DIR/node_modules/.bin/spectral" lint --ruleset .spectral.yaml --fail-severity error "$DIR/openapi.json"
