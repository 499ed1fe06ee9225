#!/usr/bin/env bash
# Installs the programs the service tests start (PostgreSQL server, headless Chromium) when they are
# missing. Debian/Ubuntu only, and only as root: elsewhere it says what is missing and exits 0, and the
# tests that need the program skip with that reason. Idempotent and quiet when everything is present.
set -euo pipefail

missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
# second OCR engine: cross-reads redacted images in benchmarks/bench_deid.py (the pipeline uses RapidOCR from PyPI)
command -v tesseract >/dev/null 2>&1 || missing+=(tesseract-ocr)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "services.sh: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]}) or the slow tests that need them skip" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  echo "services.sh: apt-get install ${missing[*]} failed; last lines:" >&2
  tail -n 20 "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
