#!/usr/bin/env bash
# setup.sh — install the system packages lookalike's tests and benchmarks
# need on Debian 12: the Fashion-MNIST data set, and FAISS on OpenBLAS
# (through setup-faiss.sh). Idempotent: installs only what is missing and
# says what it did. Run as root or with sudo.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log() { printf 'setup: %s\n' "$*"; }

. "$here/apt.sh"

command -v go >/dev/null || { log "error: Go 1.26 is not on PATH (https://go.dev/dl)"; exit 1; }

apt_ensure dataset-fashion-mnist gcc g++ make
"$here/setup-faiss.sh"
