# subsync — build and test entry points. `make test` needs no set-up: the
# Go test kit (internal/testenv) finds Postgres and Redis or starts
# throwaway ones, and installs stripe-mock and promtool when they are missing.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
LDFLAGS   = -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
FUZZTIME ?= 60s

# Runs a command with Postgres and Redis found or started, their URLs
# exported, so that every test binary shares one server.
SERVICES = $(GO) run ./internal/cmd/withservices --

.PHONY: all build test test-race lint bench chaos fuzz demo clean

all: build

## build: bin/subsyncd and bin/stripefake, static, with version and commit
build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/subsyncd ./cmd/subsyncd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/stripefake ./cmd/stripefake

## test: gofmt, vet, the whole go test suite (promtool rule tests included), fuzz smoke
test:
	$(SERVICES) bash scripts/test.sh

## test-race: the go test suite under the race detector
test-race:
	$(SERVICES) $(GO) test -race -count=1 -timeout 30m ./...

## lint: gofmt and go vet
lint:
	bash scripts/test.sh lint

## bench: the sweep benchmark's figures
bench:
	$(SERVICES) bash scripts/bench.sh

## chaos: fault-injection runs (database, Redis and Stripe outages)
chaos:
	$(SERVICES) bash scripts/chaos.sh

## fuzz: every Fuzz target for FUZZTIME each (default 60s)
fuzz:
	FUZZTIME=$(FUZZTIME) $(SERVICES) bash scripts/fuzz.sh

## demo: the whole loop on this machine, no Stripe account, no network
demo:
	$(SERVICES) bash scripts/demo.sh

clean:
	rm -rf bin
