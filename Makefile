# shoal's build. `make demo` and `make test` are the two commands a newcomer needs; both set up
# what they need on a fresh Debian machine of this kind.

GO        ?= go
BIN       := bin/shoal
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
# The race detector is part of the test suite: every package must be clean under it.
TESTFLAGS ?= -race -count=1

.PHONY: all build images test lint bench demo clean docs

all: build

# Statically linked (no cgo): the binary also serves, bind-mounted, as the exec helper inside
# containers whose environment holds a Secret's value, and images need not have a C library.
build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/shoal

# The demo and example images (tiny Go programs in examples/images) as OCI tarballs in dist/images,
# ready for import into containerd. Tests build the same images in-process and serve them from a
# registry on 127.0.0.1, so they do not need this step.
images:
	$(GO) run ./examples/images/build -o dist/images

# The whole test suite. Tests that need root, containerd or network namespaces run for real when
# the machine has them (CI does: see .ci/run) and say clearly why they skip when it does not.
test:
	$(GO) test $(TESTFLAGS) ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Benchmarks behind the figures in docs/benchmarks.md (see that file for what each measures; the
# runtime and svcproxy benchmarks need root and take seconds per iteration).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./manifest ./gitsource ./scheduler ./state ./svcproxy/...

# Regenerate the generated reference docs (checked by a test, so they cannot drift).
docs:
	$(GO) test ./manifest -run TestReference -update

demo: build
	./scripts/demo.sh

clean:
	rm -rf bin dist .demo
