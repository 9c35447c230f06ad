# lowrank: build, test, benchmark.
GO      ?= go
SHELL   := bash
BIN     ?= bin/lowrank
PKGS    := ./...

.PHONY: all demo build build-mpi test test-go test-noasm test-arm64 test-slurm test-mpi bench bench-openblas lint generate fuzz clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/lowrank

# The MPI build (data-parallel training under mpirun or srun): cgo against
# Open MPI (Debian: apt-get install libopenmpi-dev openmpi-bin).
build-mpi:
	@pkg-config --exists ompi-c || { echo "make build-mpi needs Open MPI's development files: apt-get install libopenmpi-dev (pkg-config ompi-c)"; exit 1; }
	CGO_ENABLED=1 $(GO) build -trimpath -tags mpi -o $(BIN)-mpi ./cmd/lowrank

# The whole job offline, no downloads: a small model and dataset made here,
# fine-tuned, evaluated, merged (about a minute on 2 cores).
demo: build
	$(BIN) demo --out demo

# The whole suite: every package (the kernel tests run every microkernel this
# CPU has, pure Go included), then the kernels built with -tags noasm, then
# arm64 NEON under qemu when qemu-aarch64 is installed (.ci/run installs it).
# Each run ends with the tests it skipped and why (internal/testsummary).
test: lint
	set -o pipefail; $(GO) test -json -count=1 -timeout 30m $(PKGS) | $(GO) run ./internal/testsummary
	$(MAKE) test-noasm
	$(MAKE) test-arm64
	$(MAKE) test-mpi
	$(MAKE) test-slurm

test-noasm:
	$(GO) test -count=1 -tags noasm ./kernels/...

test-arm64:
	@if command -v qemu-aarch64 >/dev/null 2>&1; then \
		echo "arm64 (NEON kernels, whole suite; -short skips the end-to-end training runs) under qemu-aarch64:"; \
		set -o pipefail; GOARCH=arm64 $(GO) test -json -count=1 -short -timeout 30m -exec qemu-aarch64 $(PKGS) | $(GO) run ./internal/testsummary; \
	else \
		echo "SKIP arm64 kernel tests: qemu-aarch64 not installed (apt-get install qemu-user)"; \
	fi

# A sweep through a real Slurm on this machine (munged, slurmctld, slurmd
# started by the script, as root): 4 tasks from `lowrank sweep --emit slurm`,
# one requeued mid-run and checked bitwise; then, when make test-mpi (or
# build-mpi) made bin/lowrank-mpi, one run over 2 ranks started by srun. Installs Debian's slurm-wlm and
# munge when they are missing and it can; skips, saying why, otherwise.
test-slurm: build
	@if ! command -v slurmctld >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing slurm-wlm and munge"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null) \
			|| echo "warning: could not install slurm-wlm and munge"; \
	fi
	bash cmd/lowrank/testdata/slurm_sweep.sh $(BIN) $(BIN)-mpi

# Data-parallel training over real Open MPI ranks (mpirun -np 1/2/4 byte for
# byte one process's run, a rank killed, SIGTERM, resume on another rank
# count). Installs Debian's openmpi-bin and libopenmpi-dev when they are
# missing and it can; skips, saying why, otherwise.
test-mpi: build
	@if ! pkg-config --exists ompi-c 2>/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing openmpi-bin and libopenmpi-dev"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openmpi-bin libopenmpi-dev pkg-config >/dev/null) \
			|| echo "warning: could not install Open MPI"; \
	fi
	@if pkg-config --exists ompi-c 2>/dev/null && command -v mpirun >/dev/null 2>&1; then \
		$(MAKE) build-mpi && \
		$(GO) vet -tags mpi ./internal/mpi ./cmd/lowrank && \
		$(GO) test -count=1 -tags mpi ./internal/mpi && \
		bash cmd/lowrank/testdata/mpi_train.sh $(BIN)-mpi $(BIN); \
	else \
		echo "SKIP mpi tests: Open MPI not installed (apt-get install openmpi-bin libopenmpi-dev)"; \
	fi

# Kernel benchmarks: go test form (compare runs with benchstat) and the user-facing command.
bench: build
	$(GO) test -run '^$$' -bench 'Gemm/.*/t[12]/' -benchtime 20x ./kernels
	$(BIN) bench kernels

# Side by side with the system OpenBLAS (apt-get install libopenblas-dev). OpenBLAS
# 0.3.21 does not recognise every AVX-512 CPU: OPENBLAS_CORETYPE=SkylakeX selects its
# AVX-512 kernel.
bench-openblas:
	$(GO) test -tags openblas -run '^$$' -bench VsOpenBLAS -count 6 ./kernels

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	GOARCH=arm64 $(GO) vet ./kernels/...

generate:
	$(GO) generate ./...
	@git diff --exit-code -- '*.s' || (echo "generated assembly is stale: commit it"; exit 1)

# Each fuzz target for a minute; the file readers under a 1 GiB memory limit.
# Their seed corpora are committed under each package's testdata/fuzz/ (and
# run by make test as ordinary tests).
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzGemm -fuzztime 60s ./kernels
	$(GO) test -run '^$$' -fuzz FuzzUnmarshalWeight -fuzztime 60s ./kernels
	GOMEMLIMIT=1GiB $(GO) test -run '^$$' -fuzz FuzzReader -fuzztime 60s ./checkpoints/gguf
	GOMEMLIMIT=1GiB $(GO) test -run '^$$' -fuzz FuzzReader -fuzztime 60s ./checkpoints/safetensors
	GOMEMLIMIT=1GiB $(GO) test -run '^$$' -fuzz FuzzHFConfig -fuzztime 60s ./model
	GOMEMLIMIT=1GiB $(GO) test -run '^$$' -fuzz FuzzTokenizerJSON -fuzztime 60s ./tokenizer
	GOMEMLIMIT=1GiB $(GO) test -run '^$$' -fuzz FuzzChatTemplate -fuzztime 60s ./tokenizer

clean:
	rm -rf bin demo
