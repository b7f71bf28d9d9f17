#!/usr/bin/env bash
# Installs the interface's npm packages (from the lockfile) when they changed, and builds
# ui/dist, which the app embeds. Pass --check to also type-check and run the UI tests.
set -euo pipefail
cd "$(dirname "$0")/../ui"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
if [ "${1:-}" = "--check" ]; then
  npm run --silent check
  npm test --silent
fi
npm run --silent build
