#!/usr/bin/env bash
# setup-browser.sh — install the headless browser that the web page's end
# to end test drives (node/e2e/web_test.go, through chromedp): Debian's
# chromium and chromium-driver, and the openclipart-png images it imports.
# Idempotent: installs only what is missing. Run as root or with sudo.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log() { printf 'setup-browser: %s\n' "$*"; }

. "$here/apt.sh"

apt_ensure chromium chromium-driver fonts-dejavu-core openclipart-png
command -v chromium >/dev/null || { log "error: chromium is not on PATH after the install"; exit 1; }
log "$(chromium --version 2>/dev/null || echo 'chromium installed')"
