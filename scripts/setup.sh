#!/usr/bin/env bash
# setup.sh — install what lookalike's tests and benchmarks need on Debian
# 12: the Fashion-MNIST data set and Debian's openclipart images, FAISS on
# OpenBLAS (setup-faiss.sh), ONNX Runtime (fetch-ort.sh) and the image
# models (`lookalike model fetch`), Chromium for the browser test
# (setup-browser.sh). Idempotent: installs only what is missing and
# says what it did. Run as root or with sudo.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log() { printf 'setup: %s\n' "$*"; }

. "$here/apt.sh"

command -v go >/dev/null || { log "error: Go 1.26 is not on PATH (https://go.dev/dl)"; exit 1; }

apt_ensure dataset-fashion-mnist openclipart-png gcc g++ make iproute2
"$here/setup-faiss.sh"
# ONNX Runtime (npm's onnxruntime-node; installs nodejs/npm if missing),
# then the default model, converted from npm's nsfwjs by our own code.
"$here/fetch-ort.sh"
(cd "$here/.." && go run ./cmd/lookalike model fetch --name all)
# Chromium and its driver, for the web page's browser test.
"$here/setup-browser.sh"
