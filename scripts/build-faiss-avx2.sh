#!/usr/bin/env bash
# build-faiss-avx2.sh — build FAISS 1.7.3 with AVX2 kernels from Debian's
# source package, and the lookalike binary that serves the "faiss-avx2"
# benchmark engine (see docs/faiss.md).
#
#   scripts/build-faiss-avx2.sh           build what is missing (idempotent)
#   scripts/build-faiss-avx2.sh --force   rebuild the library too
#
# Everything lands under ${LOOKALIKE_CACHE:-~/.cache/lookalike}/faiss-avx2:
#   src/faiss-1.7.3/       Debian's source tree (patches applied)
#   build/                 cmake build directory
#   lib/libfaiss_avx2.a    the static library (only faiss_avx2 is built)
#   lookalike-faiss-avx2   go build -tags 'faiss faiss_avx2' ./cmd/lookalike
#
# Not run in CI: the library takes 15–30 minutes on 2 cores. Needs root (or
# sudo) for apt-get the first time; later runs only rebuild the Go binary.
set -euo pipefail

log() { printf 'build-faiss-avx2: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

force=0
case "${1:-}" in
--force) force=1 ;;
"") ;;
*) die "usage: $0 [--force]" ;;
esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${LOOKALIKE_CACHE:-$HOME/.cache/lookalike}
root=$cache/faiss-avx2
lib=$root/lib/libfaiss_avx2.a
bin=$root/lookalike-faiss-avx2
jobs=${JOBS:-$(nproc)}
want_version=1.7.3

. "$(dirname "$0")/apt.sh"

ensure_packages() { apt_ensure dpkg-dev cmake make g++ libopenblas-dev liblapack-dev; }

ensure_deb_src() {
	if grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/ &&
		apt-cache showsrc faiss >/dev/null 2>&1 && [ -n "$(apt-cache showsrc faiss 2>/dev/null)" ]; then
		log "deb-src for faiss present"
		return
	fi
	local f=/etc/apt/sources.list.d/lookalike-deb-src.sources
	if [ ! -e "$f" ]; then
		# The mirror this machine already uses for binary packages.
		local uri
		uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | head -1 | awk '{print $2}')
		[ -n "$uri" ] || uri=$(grep -hsE '^deb ' /etc/apt/sources.list | head -1 | awk '{print $2}')
		[ -n "$uri" ] || { log "error: no Debian mirror found in /etc/apt to add deb-src for"; exit 1; }
		log "adding deb-src for bookworm main ($uri) in $f"
		printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" |
			$SUDO tee "$f" >/dev/null
	fi
	log "apt-get update (for the source index)"
	$SUDO apt-get update
}

fetch_source() {
	local dir
	dir=$(find "$root/src" -maxdepth 1 -type d -name "faiss-$want_version*" 2>/dev/null | head -1 || true)
	if [ -n "$dir" ] && [ -f "$dir/CMakeLists.txt" ]; then
		log "source present: $dir"
		echo "$dir"
		return
	fi
	ensure_deb_src >&2
	mkdir -p "$root/src"
	log "apt-get source faiss into $root/src"
	(cd "$root/src" && apt-get source faiss >&2)
	dir=$(find "$root/src" -maxdepth 1 -type d -name "faiss-$want_version*" | head -1)
	[ -n "$dir" ] || die "apt-get source gave no faiss-$want_version* directory (got: $(ls "$root/src"))"
	echo "$dir"
}

build_lib() {
	local src=$1 t0 t1
	t0=$(date +%s)
	log "configuring (cmake, FAISS_OPT_LEVEL=avx2)"
	cmake -S "$src" -B "$root/build" \
		-DFAISS_OPT_LEVEL=avx2 \
		-DFAISS_ENABLE_GPU=OFF \
		-DFAISS_ENABLE_PYTHON=OFF \
		-DFAISS_ENABLE_C_API=OFF \
		-DBUILD_TESTING=OFF \
		-DBUILD_SHARED_LIBS=OFF \
		-DCMAKE_POSITION_INDEPENDENT_CODE=ON \
		-DCMAKE_BUILD_TYPE=Release >&2
	log "compiling faiss_avx2 with $jobs jobs (15–30 minutes on 2 cores)"
	cmake --build "$root/build" --target faiss_avx2 -j "$jobs" >&2
	local out
	out=$(find "$root/build" -name libfaiss_avx2.a | head -1)
	[ -n "$out" ] || die "no libfaiss_avx2.a under $root/build"
	mkdir -p "$root/lib"
	cp "$out" "$lib.tmp" && mv "$lib.tmp" "$lib"
	ln -sfn "$src" "$root/include"
	t1=$(date +%s)
	log "built $lib in $(((t1 - t0) / 60)) min $(((t1 - t0) % 60)) s"
}

# 1. The library.
if [ "$force" -eq 0 ] && [ -f "$lib" ] && [ -e "$root/include/faiss/Index.h" ]; then
	log "library present: $lib (use --force to rebuild)"
else
	ensure_packages
	src=$(fetch_source)
	build_lib "$src"
fi

# 2. The Go binary that serves "faiss-avx2" (cheap: go's build cache).
command -v go >/dev/null || die "go not in PATH"
if ! ls "$repo"/cmd/lookalike/*.go >/dev/null 2>&1; then
	die "$repo/cmd/lookalike has no Go files yet; the library is built, rerun this script once it exists"
fi
log "go build -tags 'faiss faiss_avx2' -o $bin ./cmd/lookalike"
(
	cd "$repo"
	CGO_ENABLED=1 \
		CGO_CXXFLAGS="-I$root/include -mavx2 -mfma -mf16c -mpopcnt ${CGO_CXXFLAGS:-}" \
		CGO_LDFLAGS="$lib ${CGO_LDFLAGS:-}" \
		go build -tags 'faiss faiss_avx2' -o "$bin.tmp" ./cmd/lookalike
)
mv "$bin.tmp" "$bin"
log "done: $bin"
log "use it: LOOKALIKE_FAISS_AVX2_BIN=$bin lookalike bench ivf --compare faiss,faiss-avx2 (default path is this one)"
