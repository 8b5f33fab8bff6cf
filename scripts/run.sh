#!/usr/bin/env bash
# run.sh — the README's run command (`make run`): a one-node lookalike with
# the default image model, its data in ./data, and Debian's openclipart
# images imported on first run.
#
#  1. builds bin/lookalike;
#  2. fetches ONNX Runtime (scripts/fetch-ort.sh) and the default model
#     (`lookalike model fetch`) into ${LOOKALIKE_CACHE:-~/.cache/lookalike}
#     when they are missing;
#  3. installs openclipart-png (public domain, 8,121 PNGs in
#     /usr/share/openclipart/png) when it is missing;
#  4. starts `lookalike serve --data data`;
#  5. until an import has finished once, creates the collection
#     "openclipart" (model mobilenet_v2_mid, cosine) and imports the images
#     in the background (resumable: an interrupted import goes on where it
#     stopped at the next run; its log is data/import-openclipart.log);
#  6. prints the page's URL. Ctrl-C stops everything cleanly; run it again
#     and everything is still there.
#
# Environment: DATA (default data), LOOKALIKE_HTTP (default
# 127.0.0.1:8080), GO (default go), IMAGES (default
# /usr/share/openclipart/png).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf 'run: %s\n' "$*" >&2; }
. scripts/apt.sh

GO=${GO:-go}
bin=bin/lookalike
data=${DATA:-data}
addr=${LOOKALIKE_HTTP:-127.0.0.1:8080}
cache=${LOOKALIKE_CACHE:-$HOME/.cache/lookalike}
images=${IMAGES:-/usr/share/openclipart/png}
coll=openclipart
model=mobilenet_v2_mid
done_marker=$data/.import-$coll-done
import_log=$data/import-$coll.log

log "building $bin"
"$GO" build -o "$bin" ./cmd/lookalike
scripts/fetch-ort.sh
if [ ! -f "$cache/models/$model/model.json" ]; then
	log "fetching and converting the default model"
	"$bin" model fetch
fi
if [ ! -d "$images" ] && [ "$images" = /usr/share/openclipart/png ]; then
	apt_ensure openclipart-png
fi
mkdir -p "$data"

server= importer=
stop() {
	trap - INT TERM
	log "stopping"
	if [ -n "$importer" ]; then kill -TERM "$importer" 2>/dev/null || true; fi
	if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; fi
	if [ -n "$importer" ]; then wait "$importer" 2>/dev/null || true; fi
	if [ -n "$server" ]; then wait "$server" 2>/dev/null || true; fi
	exit 0
}
trap stop INT TERM

"$bin" serve --data "$data" --http "$addr" &
server=$!
for _ in $(seq 1 300); do
	if "$bin" ctl --addr "$addr" status >/dev/null 2>&1; then break; fi
	if ! kill -0 "$server" 2>/dev/null; then
		wait "$server" || true
		log "the server exited before serving"
		exit 1
	fi
	sleep 0.1
done

if [ ! -f "$done_marker" ]; then
	log "importing $images into collection $coll in the background (log: $import_log)"
	(
		"$bin" import --server "http://$addr" --collection "$coll" --create --model "$model" --metric cosine \
			--quiet "$images" >"$import_log" 2>&1 &
		pid=$!
		trap 'kill -TERM $pid 2>/dev/null' TERM
		if wait $pid; then
			touch "$done_marker"
			printf 'run: import done: %s\n' "$(tail -n 1 "$import_log")" >&2
		else
			wait $pid 2>/dev/null || true
			printf 'run: import stopped (it resumes at the next run): %s\n' "$(tail -n 1 "$import_log")" >&2
		fi
	) &
	importer=$!
fi

log "lookalike is serving: open http://$addr/ (Ctrl-C stops it)"
wait "$server" || true
server=
stop
