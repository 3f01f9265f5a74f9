# The test command of the README: formatting, vet, the race detector on the
# whole module (the ledger, store and API are concurrent), then a short
# fuzzing run of every fuzz target. The budget is a count, not a duration:
# Go 1.26's fuzz coordinator can fail a duration-bounded run with a spurious
# "context deadline exceeded" on a loaded machine (go.dev/issue/75804).
FUZZTIME ?= 100000x

.PHONY: test check race fuzz build

test: check race fuzz

build:
	go build -o bin/farebox ./cmd/farebox

check:
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed on:"; gofmt -l .; exit 1)
	go vet ./...

race:
	go test -race -count=1 -timeout 15m ./...

fuzz:
	@for pkg in $$(go list ./...); do \
	  for t in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    go test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done
