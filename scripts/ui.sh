#!/usr/bin/env bash
# Installs the interface's npm packages (from the lockfile) when they changed, and builds
# ui/dist, which the app embeds. Pass --check to also type-check and run the UI tests.
set -euo pipefail
cd "$(dirname "$0")/../ui"
# `npm install` with the committed lockfile (not `npm ci`: a registry mirror that serves only
# this platform's optional packages leaves the others out of the lockfile, which `npm ci`
# refuses); --no-save keeps the lockfile as committed.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm install --no-save --no-audit --no-fund --loglevel=error
fi
if [ "${1:-}" = "--check" ]; then
  npm run --silent check
  npm test --silent
fi
npm run --silent build
