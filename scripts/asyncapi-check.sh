#!/usr/bin/env bash
# Validates the committed AsyncAPI documents with the official parser (@asyncapi/parser, from the
# npm registry, pinned by scripts/asyncapi/package-lock.json, installed under .data/). The
# domain's tests already validate them against AsyncAPI 3.0.0's JSON Schema; the parser adds
# what a schema cannot check (references, channel and operation consistency).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "[asyncapi] installing nodejs and npm"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
dir=.data/asyncapi-parser
mkdir -p "$dir"
if ! cmp -s scripts/asyncapi/package-lock.json "$dir/package-lock.json" || [ ! -d "$dir/node_modules" ]; then
  cp scripts/asyncapi/package.json scripts/asyncapi/package-lock.json "$dir/"
  (cd "$dir" && npm ci --silent --no-audit --no-fund)
fi
cp scripts/asyncapi/check.mjs "$dir/"
node "$dir/check.mjs" domain/asyncapi/*.json
