#!/usr/bin/env bash
# fetch-ort.sh — put the ONNX Runtime shared library where lookalike looks
# for it: ${LOOKALIKE_CACHE:-~/.cache/lookalike}/ort/libonnxruntime.so.1.
#
# The library comes from the npm tarball onnxruntime-node@1.30.0 (MIT),
# which ships it prebuilt for linux/x64. `npm pack` downloads the tarball
# without running its install scripts; only the one library is extracted
# and its SHA-256 checked against the value below. Idempotent: a library
# already in place with the right hash is left alone. Installs nodejs and
# npm with apt when npm is missing.
#
# lookalike finds the library at the path above, or wherever
# LOOKALIKE_ORT_LIB (or the --ort-lib flag) points.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log() { printf 'fetch-ort: %s\n' "$*"; }

version=1.30.0
member=package/bin/napi-v6/linux/x64/libonnxruntime.so.1
want=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
cache=${LOOKALIKE_CACHE:-$HOME/.cache/lookalike}
dest=$cache/ort/libonnxruntime.so.1

case "$(uname -s)/$(uname -m)" in
Linux/x86_64) ;;
*) log "error: only linux/x86_64 is packaged here ($(uname -s)/$(uname -m)); install ONNX Runtime >= 1.24 yourself and set LOOKALIKE_ORT_LIB to its libonnxruntime.so"; exit 1 ;;
esac

if [ -f "$dest" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$want" ]; then
	log "already in place: $dest (ONNX Runtime $version)"
	exit 0
fi

if ! command -v npm >/dev/null; then
	. "$here/apt.sh"
	apt_ensure nodejs npm
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log "downloading onnxruntime-node@$version with npm pack (about 110 MB)"
(cd "$tmp" && npm pack --silent "onnxruntime-node@$version" >/dev/null)
tgz=$tmp/onnxruntime-node-$version.tgz
[ -f "$tgz" ] || { log "error: npm pack did not produce $tgz"; exit 1; }
tar -xzf "$tgz" -C "$tmp" "$member"
got=$(sha256sum "$tmp/$member" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
	log "error: $member has SHA-256 $got, want $want; not installing it"
	exit 1
fi
mkdir -p "$cache/ort"
# Rename into place so that a reader never sees half a library.
install -m 0644 "$tmp/$member" "$dest.tmp.$$"
mv -f "$dest.tmp.$$" "$dest"
log "installed $dest (ONNX Runtime $version, $(du -h "$dest" | cut -f1))"
