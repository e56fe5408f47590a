#!/usr/bin/env bash
# Checks protocol/schema.json with ajv in strict mode (as AsyncAPI tooling and client code
# generators read it: draft-07) and every example against its own frame's definition
# (scripts/protocol-check.mjs). ajv is pinned and installed with npm into
# target/protocol-check (once; Node and npm are needed).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=target/protocol-check
AJV=ajv@8.17.1
FORMATS=ajv-formats@3.0.1
mkdir -p "$DIR"
if ! grep -q "\"version\": \"${AJV##*@}\"" "$DIR/node_modules/ajv/package.json" 2>/dev/null ||
  ! grep -q "\"version\": \"${FORMATS##*@}\"" "$DIR/node_modules/ajv-formats/package.json" 2>/dev/null; then
  npm install --prefix "$DIR" --no-save --no-audit --no-fund --silent "$AJV" "$FORMATS"
fi
cp scripts/protocol-check.mjs "$DIR/check.mjs"
node "$DIR/check.mjs" protocol
