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
case $part in
cuda) run_cuda "$@" ;;
node) run_node "$@" ;;
all)
	rc=0
	run_cuda "$@" || rc=1
	run_node "$@" || rc=1
	exit $rc
	;;
*)
	echo "usage: $0 [all|cuda|node] [test binary flags]" >&2
	exit 2
	;;
esac
