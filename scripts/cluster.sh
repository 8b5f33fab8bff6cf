#!/usr/bin/env bash
# cluster.sh — a local three-node lookalike cluster on loopback (`make
# cluster`): one command, three `lookalike serve` processes that find each
# other by gossip and bootstrap Raft together (--bootstrap-expect 3).
#
#   node  HTTP (API, page)   Raft             gossip           data
#   n1    127.0.0.1:8081     127.0.0.1:7951   127.0.0.1:7961   data/cluster/n1
#   n2    127.0.0.1:8082     127.0.0.1:7952   127.0.0.1:7962   data/cluster/n2
#   n3    127.0.0.1:8083     127.0.0.1:7953   127.0.0.1:7963   data/cluster/n3
#
# Logs go to data/cluster/nN.log. Ctrl-C stops all three (SIGTERM, then
# SIGKILL after 30 s); run it again and the cluster comes back with its
# data (a node with Raft state never bootstraps twice).
#
# Environment: DATA (default data/cluster), BIN (default bin/lookalike),
# GO (default go), MODEL
# (default none: no image model; "default" serves the cached default
# model), GOSSIP_KEY (base64 of 16/24/32 bytes: encrypted gossip).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf 'cluster: %s\n' "$*" >&2; }

GO=${GO:-go}
bin=${BIN:-bin/lookalike}
data=${DATA:-data/cluster}
model=${MODEL:-none}

log "building $bin"
"$GO" build -o "$bin" ./cmd/lookalike
mkdir -p "$data"

seeds=127.0.0.1:7961,127.0.0.1:7962,127.0.0.1:7963
pids=()
stop() {
	trap - INT TERM EXIT
	log "stopping"
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for _ in $(seq 300); do
		alive=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && return 0
		sleep 0.1
	done
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
}
trap stop INT TERM EXIT

for i in 1 2 3; do
	args=(serve --node-id "n$i" --data "$data/n$i" --http "127.0.0.1:808$i" --raft "127.0.0.1:795$i"
		--gossip "127.0.0.1:796$i" --join "$seeds" --bootstrap-expect 3 --quiet)
	[ "$model" = default ] || args+=(--model "$model")
	[ -z "${GOSSIP_KEY:-}" ] || args+=(--gossip-key "$GOSSIP_KEY")
	"$bin" "${args[@]}" >>"$data/n$i.log" 2>&1 &
	pids+=($!)
done

for _ in $(seq 200); do
	if "$bin" ctl --addr 127.0.0.1:8081 status 2>/dev/null | grep -q 'voter (leader)'; then
		break
	fi
	for p in "${pids[@]}"; do
		kill -0 "$p" 2>/dev/null || { log "a node exited; see $data/n*.log"; exit 1; }
	done
	sleep 0.1
done
"$bin" ctl --addr 127.0.0.1:8081 status || true
cat <<MSG

  n1  http://127.0.0.1:8081
  n2  http://127.0.0.1:8082
  n3  http://127.0.0.1:8083

  $bin ctl --addr 127.0.0.1:8082 status      (any node answers)
  logs: $data/n1.log n2.log n3.log            Ctrl-C stops all three
MSG
wait
