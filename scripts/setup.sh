#!/usr/bin/env bash
# setup.sh — install the system packages lookalike's tests and benchmarks
# need on Debian 12: the Fashion-MNIST data set, and FAISS on OpenBLAS
# (through setup-faiss.sh). Idempotent: installs only what is missing and
# says what it did. Run as root or with sudo.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log() { printf 'setup: %s\n' "$*"; }

SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

command -v go >/dev/null || { log "error: Go 1.26 is not on PATH (https://go.dev/dl)"; exit 1; }

missing=()
for p in dataset-fashion-mnist gcc g++ make; do
	installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	log "already installed: dataset-fashion-mnist gcc g++ make"
else
	log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; then
		log "apt-get update (package lists are stale or missing)"
		$SUDO apt-get update
		$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
	fi
fi
"$here/setup-faiss.sh"
