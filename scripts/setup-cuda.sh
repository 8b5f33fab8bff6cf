#!/usr/bin/env bash
# setup-cuda.sh — install the CUDA toolkit (nvcc) that package cuda needs to
# regenerate its PTX and to link against the stub libcuda (see docs/cuda.md).
#
#   scripts/setup-cuda.sh        install what is missing (idempotent)
#
# On Debian 12 (bookworm) nvidia-cuda-toolkit 11.8 lives in the contrib and
# non-free components. This script
#   1. adds "contrib non-free non-free-firmware" to the Components: lines of
#      /etc/apt/sources.list.d/debian.sources (only where missing),
#   2. runs apt-get update,
#   3. installs nvidia-cuda-toolkit (about 1.6 GB on disk).
# It does nothing when nvcc is already on PATH (or in /usr/bin). Needs root
# or sudo. No GPU is needed: nvcc -ptx and the stub libcuda work without one.
set -euo pipefail

log() { printf 'setup-cuda: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if command -v nvcc >/dev/null 2>&1; then
	log "nvcc present ($(command -v nvcc)): nothing to do"
	nvcc --version | tail -n 2 >&2
	exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || die "need root or sudo to install packages"
	sudo="sudo"
fi

[ -r /etc/os-release ] && . /etc/os-release
if [ "${VERSION_CODENAME:-}" != "bookworm" ]; then
	log "warning: written for Debian 12 (bookworm), this is ${PRETTY_NAME:-unknown}"
fi

src=/etc/apt/sources.list.d/debian.sources
if [ -f "$src" ]; then
	# Append each missing component to every Components: line. Re-running
	# finds them all present and changes nothing.
	tmp=$(mktemp)
	awk '
	/^Components:/ {
		line = $0
		n = split("contrib non-free non-free-firmware", want, " ")
		for (i = 1; i <= n; i++) {
			found = 0
			m = split(line, have, /[ \t]+/)
			for (j = 2; j <= m; j++) if (have[j] == want[i]) found = 1
			if (!found) line = line " " want[i]
		}
		print line
		next
	}
	{ print }
	' "$src" >"$tmp"
	if cmp -s "$src" "$tmp"; then
		log "$src already lists contrib non-free non-free-firmware"
		rm -f "$tmp"
	else
		# The backup goes outside sources.list.d, where apt would warn about it.
		log "adding contrib non-free non-free-firmware to $src (previous version: /var/backups/debian.sources.setup-cuda)"
		$sudo cp "$src" /var/backups/debian.sources.setup-cuda
		$sudo install -m 0644 "$tmp" "$src"
		rm -f "$tmp"
	fi
else
	die "$src not found; add contrib and non-free to your apt sources by hand"
fi

log "apt-get update"
$sudo apt-get update
log "apt-get install nvidia-cuda-toolkit (about 1.6 GB)"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nvidia-cuda-toolkit

command -v nvcc >/dev/null 2>&1 || die "nvcc not on PATH after install"
nvcc --version | tail -n 2 >&2
stub=/usr/lib/x86_64-linux-gnu/stubs/libcuda.so
if [ -e "$stub" ]; then
	log "stub libcuda: $stub"
else
	log "warning: stub libcuda not found at $stub (linking -tags cuda needs it)"
fi
log "done"
