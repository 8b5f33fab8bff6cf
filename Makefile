# lookalike — the targets people expect. `make run` and `make test` install
# what they need (scripts/setup.sh); everything else assumes they ran once.
GO       ?= go
BIN      := bin
CACHE    ?= $(or $(LOOKALIKE_CACHE),$(HOME)/.cache/lookalike)
FUZZTIME ?= 30000x
# Under make, tests whose component (data set, FAISS, ...) is missing fail
# instead of skipping.
export LOOKALIKE_REQUIRE_COMPONENTS := 1

.PHONY: all build build-faiss setup run cluster bench-fmnist test test-go test-race test-faiss fuzz bench bench-kernels lint generate faiss-avx2 clean

all: build

build:
	$(GO) build -o $(BIN)/lookalike ./cmd/lookalike

# The binary with FAISS linked in, for `bench ivf --compare faiss`.
build-faiss: setup
	$(GO) build -tags faiss -o $(BIN)/lookalike-faiss ./cmd/lookalike

setup:
	scripts/setup.sh

# A one-node lookalike on http://127.0.0.1:8080, its data in ./data, with
# the default image model and Debian's openclipart images imported on the
# first run (scripts/run.sh; Ctrl-C stops it cleanly; run it again and
# everything is still there).
run:
	scripts/run.sh

# A local 3-node cluster on loopback (HTTP 127.0.0.1:8081-8083, data in
# data/cluster/); Ctrl-C stops it.
cluster:
	scripts/cluster.sh

# The index against FAISS on Fashion-MNIST, with the curves in fmnist.png.
bench-fmnist: build-faiss
	$(BIN)/lookalike-faiss bench ivf --data fmnist --nprobe 1,2,4,8,16,32,64 --compare faiss --plot fmnist.png

test: setup test-go test-race test-faiss fuzz

# -timeout: go test's default of 10 min per package is too close for the
# e2e package (its cluster tests take 4–5 min here, twice that race-built).
test-go:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

# The concurrency contracts of the index, the coordinator and the store,
# under the race detector.
test-race:
	$(GO) test -race -count=1 ./ivf/... ./coordinator/... ./node/ ./node/store/... ./embed/...
	# The cluster's processes built with -race: a data race stops a server
	# (halt_on_error), which fails its test.
	LOOKALIKE_E2E_RACE=1 GORACE=halt_on_error=1 $(GO) test -count=1 -timeout 30m -run 'TestCluster' ./node/e2e/

test-faiss:
	$(GO) vet -tags faiss ./bench/... ./cmd/...
	$(GO) test -tags faiss -count=1 ./bench/faiss/

# Each decoder's fuzz target, briefly (go test runs one target at a time).
# The budget is a count of executions, not a duration: Go 1.26's fuzz
# coordinator can report a spurious "context deadline exceeded" when a
# -fuzztime duration ends mid-execution (go.dev/issue/75804, fixed in 1.27).
FUZZ_TARGETS = \
	ivf:FuzzLoad \
	bench:FuzzReadFvecs bench:FuzzReadIvecs bench:FuzzDecodeIDX \
	proto:FuzzDecodeCreateCollection proto:FuzzDecodeInsert proto:FuzzDecodeSearch \
	proto:FuzzDecodeTrain proto:FuzzDecodeBulk proto:FuzzRPCDecode \
	coordinator/meta:FuzzDecode coordinator/meta:FuzzDecodeTable \
	node/store:FuzzDecode \
	proto:FuzzDecodeImageUpload node:FuzzDecodeImageRecord node:FuzzDecodeEntry \
	embed:FuzzPrepare embed:FuzzExifOrientation embed/tfjs:FuzzLoad \
	node/membership:FuzzDecodeMeta
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$fn ./$$pkg ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) ./$$pkg; \
	done

# Kernel throughput at every level, for benchstat.
bench-kernels:
	$(GO) test -run '^$$' -bench 'SQ8|L2F32|Gemm' -count 6 ./ivf | tee $(BIN)/kernels.txt

bench: build-faiss
	$(BIN)/lookalike-faiss bench ivf --data fmnist --compare faiss --plot $(BIN)/fmnist.png
	$(BIN)/lookalike-faiss bench ivf --data fmnist-rot --refine 4 --compare faiss --plot $(BIN)/fmnist-rot.png

# The AVX2 build of FAISS, the fair stand-in for Milvus's knowhere (slow:
# builds FAISS from Debian's source package; not part of CI).
faiss-avx2:
	scripts/build-faiss-avx2.sh

generate:
	$(GO) generate ./ivf

lint:
	$(GO) vet ./...
	$(GO) vet -tags faiss ./bench/... ./cmd/...
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)

clean:
	rm -rf $(BIN)

-include scripts/cuda.mk
