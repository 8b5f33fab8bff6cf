#!/usr/bin/env bash
# setup-faiss.sh — install what `go build -tags faiss` links (Debian's
# libfaiss-dev 1.7.3, a static libfaiss.a) and make OpenBLAS the BLAS and
# LAPACK behind libblas.so.3 / liblapack.so.3. FAISS's k-means runs on BLAS;
# with Debian's reference BLAS it is about 60× slower (docs/faiss.md).
#
# Idempotent: installs only what is missing (apt-get update only when an
# install needs it) and says what it did. Run as root or with sudo.
set -euo pipefail

log() { printf 'setup-faiss: %s\n' "$*"; }

. "$(dirname "$0")/apt.sh"
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)

apt_ensure libfaiss-dev libopenblas0-pthread

# select NAME: point the alternative NAME at OpenBLAS's library.
select_openblas() {
	local name=$1-$arch lib=$1
	local want=/usr/lib/$arch/openblas-pthread/$lib
	[ -e "$want" ] || { log "error: $want missing (libopenblas0-pthread broken?)"; exit 1; }
	local now
	now=$(update-alternatives --query "$name" 2>/dev/null | sed -n 's/^Value: //p')
	if [ "$now" = "$want" ]; then
		log "$lib already uses OpenBLAS ($want)"
	else
		log "selecting OpenBLAS for $lib (was: ${now:-none})"
		$SUDO update-alternatives --set "$name" "$want"
	fi
}
select_openblas libblas.so.3
select_openblas liblapack.so.3

[ -f "/usr/lib/$arch/libfaiss.a" ] || { log "error: /usr/lib/$arch/libfaiss.a missing after install"; exit 1; }
log "ready: go build -tags faiss ./... links /usr/lib/$arch/libfaiss.a"
