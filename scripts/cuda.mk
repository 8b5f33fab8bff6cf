# scripts/cuda.mk — package cuda: PTX, the cuda-tagged build, GPU tests.
# The top Makefile includes it (-include scripts/cuda.mk); it also works on
# its own: make -f scripts/cuda.mk cuda-check. See docs/cuda.md.
#
#   make ptx         regenerate cuda/ptx/*.ptx from cuda/kernels/*.cu (nvcc)
#   make cuda        build bin/lookalike-cuda (go build -tags cuda)
#   make cuda-check  what CI runs: PTX up to date, vet, build and link -tags cuda
#   make gpu-test    build bin/cuda.test, bin/e2e.test, bin/lookalike-cuda and bin/gpu-test.sh
#                    (scripts/gpu-test.sh) to run on a GPU machine
#   make gpu-pack    the same, packed into bin/gpu-test.tar.xz
#
# Needs nvcc and the stub libcuda: scripts/setup-cuda.sh installs both
# (Debian 12 nvidia-cuda-toolkit 11.8). No GPU is needed for any target here.

# Keep the includer's default goal: these targets are never the default.
CUDA_SAVED_DEFAULT_GOAL := $(.DEFAULT_GOAL)

GO ?= go
NVCC ?= nvcc
CUDA_ARCHS ?= 80 90
# Deterministic PTX: fixed flags, relative paths, run from the repository
# root. -fmad=false keeps a*b+c unfused, as the CPU harness computes it.
CUDA_NVCCFLAGS ?= -std=c++14 -O3 -fmad=false
CUDA_STUBS ?= /usr/lib/x86_64-linux-gnu/stubs
# cu links -lcuda; without a driver installed only the stub provides it.
CUDA_GOENV = CGO_LDFLAGS="$(CGO_LDFLAGS) -L$(CUDA_STUBS)"
CUDA_KERNELS = cuda/kernels/sq8.cu
CUDA_HEADERS = cuda/kernels/sq8.h

.PHONY: ptx cuda cuda-check gpu-test gpu-pack cuda-nvcc

cuda-nvcc:
	@command -v $(NVCC) >/dev/null 2>&1 || { \
		echo "cuda: $(NVCC) not found: run scripts/setup-cuda.sh (installs nvidia-cuda-toolkit)" >&2; exit 1; }

# Always regenerated (phony): cuda-check compares the result with git.
ptx: cuda-nvcc
	@mkdir -p cuda/ptx
	@for a in $(CUDA_ARCHS); do \
		for k in $(CUDA_KERNELS); do \
			out=cuda/ptx/$$(basename $$k .cu)_sm$$a.ptx; \
			echo "$(NVCC) -arch=compute_$$a -ptx $(CUDA_NVCCFLAGS) -o $$out $$k"; \
			$(NVCC) -arch=compute_$$a -ptx $(CUDA_NVCCFLAGS) -o $$out $$k || exit 1; \
		done; \
	done

cuda:
	@mkdir -p bin
	$(CUDA_GOENV) $(GO) build -tags cuda -o bin/lookalike-cuda ./cmd/lookalike

cuda-check: ptx
	git diff --exit-code -- cuda/ptx
	@test -z "$$(git status --porcelain -- cuda/ptx)" || { \
		echo "cuda: cuda/ptx has files git does not track: commit them" >&2; git status --short -- cuda/ptx; exit 1; }
	$(CUDA_GOENV) $(GO) vet -tags cuda ./cuda/... ./node/e2e/
	$(CUDA_GOENV) $(GO) build -tags cuda ./...
	@mkdir -p bin
	$(CUDA_GOENV) $(GO) test -tags cuda -c -o bin/cuda.test ./cuda/

# The GPU machine has no Go: build the test binaries and the binary the
# node tests start, stripped (they travel), the data they read beside them,
# and scripts/gpu-test.sh, which runs them there.
gpu-test:
	@mkdir -p bin
	$(CUDA_GOENV) $(GO) test -tags cuda -ldflags='-s -w' -c -o bin/cuda.test ./cuda/
	$(CUDA_GOENV) $(GO) test -tags cuda -ldflags='-s -w' -c -o bin/e2e.test ./node/e2e/
	$(CUDA_GOENV) $(GO) build -tags cuda -ldflags='-s -w' -o bin/lookalike-cuda ./cmd/lookalike
	@if [ -d /usr/share/datasets/fashion-mnist ]; then \
		mkdir -p bin/testdata/fashion-mnist && \
		cp /usr/share/datasets/fashion-mnist/*-images-idx3-ubyte.gz bin/testdata/fashion-mnist/; \
	else echo "cuda: no /usr/share/datasets/fashion-mnist here (apt-get install dataset-fashion-mnist): the Fashion-MNIST GPU tests will skip" >&2; fi
	cp scripts/gpu-test.sh bin/gpu-test.sh
	@echo "gpu-test: built bin/cuda.test, bin/e2e.test, bin/lookalike-cuda; on the GPU machine, from the repository root:"
	@echo "    ./bin/gpu-test.sh        # package cuda's GPU tests and benchmarks, then the node's (scripts/gpu-test.sh)"

# gpu-test packed into one file to copy: bin/gpu-test.tar.xz (about 47 MB
# with Fashion-MNIST; the binaries alone are 55 MB unpacked). There:
# tar xJf gpu-test.tar.xz && ./gpu-test.sh
gpu-pack: gpu-test
	tar -C bin -cJf bin/gpu-test.tar.xz cuda.test e2e.test lookalike-cuda gpu-test.sh $$(cd bin && ls -d testdata 2>/dev/null)
	@ls -l bin/gpu-test.tar.xz

.DEFAULT_GOAL := $(CUDA_SAVED_DEFAULT_GOAL)
