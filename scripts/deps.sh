#!/usr/bin/env bash
# Installs what building Plenum needs on Debian/Ubuntu, if it is missing: a C compiler and
# pkg-config (ring builds C), and a Rust toolchain when none is on PATH.
set -euo pipefail
missing=()
command -v cc >/dev/null || missing+=(build-essential)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v python3 >/dev/null || missing+=(python3)
command -v cargo >/dev/null || missing+=(cargo rustc)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi
