#!/bin/sh
# GPU tests and benchmarks, run on a machine with an NVIDIA GPU of compute
# capability 8.0 or later and its driver (libcuda.so.1); no Go, no CUDA
# toolkit. `make gpu-test` copies this script into bin/ beside what it runs:
#   cuda.test       package cuda's GPU tests and benchmarks (the kernels, the scanner)
#   e2e.test        node/e2e's GPU tests: `lookalike serve --gpu` beside a plain node
#   lookalike-cuda  the binary e2e.test starts (-tags cuda)
#   testdata/       Fashion-MNIST, when it was installed where make ran
#
#   bin/gpu-test.sh                 both parts
#   bin/gpu-test.sh cuda [ARGS]     package cuda only; ARGS go to cuda.test
#   bin/gpu-test.sh node [ARGS]     the node only; ARGS go to e2e.test
#   bin/gpu-test.sh sanitize [TOOL [ARGS]]  the node's GPU tests with every node process
#                                   under compute-sanitizer --tool TOOL (memcheck,
#                                   synccheck; racecheck runs a small
#                                   TestGPUServeMatchesCPU only)
set -e
cd "$(dirname "$0")"
part=${1:-all}
[ $# -gt 0 ] && shift
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
run_cuda() {
	./cuda.test -test.v -test.run GPU -test.bench GPU -test.benchtime 20x -test.timeout 60m "$@"
}
run_node() {
	LOOKALIKE_E2E_BIN=./lookalike-cuda ./e2e.test -test.v -test.run GPU -test.bench GPU -test.benchtime 1x -test.timeout 30m "$@"
}
# Each node runs as sanitizer → lookalike-cuda behind a wrapper that sends
# SIGTERM on to the node and keeps the node's output out of the test's pipe
# (the tests' cleanup SIGKILLs the wrapper; the pipe would stay open).
# Afterwards the nodes that cleanup orphaned get SIGTERM, so that each
# sanitizer writes its summary: one san-PID.log per node process.
run_sanitize() {
	tool=${1:-memcheck}
	[ $# -gt 0 ] && shift
	san=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
	[ -n "$san" ] || { echo "no compute-sanitizer on this machine" >&2; exit 1; }
	here=$PWD
	rm -f san-*.log node-*.out
	cat >san-node.sh <<W
#!/bin/bash
exec >>$here/node-\$\$.out 2>&1
$san --tool $tool --log-file $here/san-%p.log $here/lookalike-cuda "\$@" &
p=\$!
trap 'pkill -TERM -P \$p' TERM INT
while kill -0 \$p 2>/dev/null; do wait \$p; done
wait \$p
W
	chmod +x san-node.sh
	rc=0
	# racecheck is far slower: one small test (LOOKALIKE_GPU_TEST_SMALL).
	tests='GPUServeMatches|GPUCluster'
	[ "$tool" = racecheck ] && { tests=GPUServeMatches; export LOOKALIKE_GPU_TEST_SMALL=1; }
	LOOKALIKE_E2E_BIN=$here/san-node.sh ./e2e.test -test.v -test.run "$tests" -test.timeout 10m "$@" || rc=1
	for p in $(pgrep -f compute-sanitizer); do pkill -TERM -P "$p" || true; done
	i=0
	while pgrep -f compute-sanitizer >/dev/null && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
	# memcheck and synccheck end with "ERROR SUMMARY: 0 errors",
	# racecheck with "RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)".
	for f in san-*.log; do
		echo "$f: $(grep -h 'SUMMARY' "$f")"
		grep -Eq 'ERROR SUMMARY: 0 errors|RACECHECK SUMMARY: 0 hazards displayed \(0 errors, 0 warnings\)' "$f" || rc=1
	done
	exit $rc
}
case $part in
cuda) run_cuda "$@" ;;
node) run_node "$@" ;;
sanitize) run_sanitize "$@" ;;
all)
	rc=0
	run_cuda "$@" || rc=1
	run_node "$@" || rc=1
	exit $rc
	;;
*)
	echo "usage: $0 [all|cuda|node] [test binary flags] | $0 sanitize [memcheck|synccheck|racecheck]" >&2
	exit 2
	;;
esac
