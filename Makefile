# Targets for working on the module; CI runs .ci/run.
.PHONY: test testrace lint tidy bench fuzz compare

test:
	go test ./...

testrace:
	go test -race ./...

lint:
	gofmt -l $$(git ls-files '*.go')
	go vet ./...
	cd bench && go vet ./...
	staticcheck ./...
	cd bench && staticcheck ./...

tidy:
	go mod tidy
	cd bench && go mod tidy

bench:
	go test -run '^$$' -bench . ./...

# Every fuzz target for FUZZTIME each (go test -fuzz takes one target at a time).
FUZZTIME ?= 30s
fuzz:
	go test -run '^$$' -fuzz '^FuzzTableModel$$' -fuzztime $(FUZZTIME) ./sessioncache
	go test -run '^$$' -fuzz '^FuzzSetIfSharedTags$$' -fuzztime $(FUZZTIME) ./sessioncache
	go test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./internal/wire
	go test -run '^$$' -fuzz '^FuzzRoundTrip$$' -fuzztime $(FUZZTIME) ./internal/wire
	go test -run '^$$' -fuzz '^FuzzBufferedRead$$' -fuzztime $(FUZZTIME) ./internal/wire
	go test -run '^$$' -fuzz '^FuzzBuffer$$' -fuzztime $(FUZZTIME) ./internal/wire
	go test -run '^$$' -fuzz '^FuzzRequestKey$$' -fuzztime $(FUZZTIME) ./internal/wire
	go test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/config
	go test -run '^$$' -fuzz '^FuzzParseMetrics$$' -fuzztime $(FUZZTIME) ./discovery
	go test -run '^$$' -fuzz '^FuzzFileParse$$' -fuzztime $(FUZZTIME) ./discovery
	go test -run '^$$' -fuzz '^FuzzDecodeReplies$$' -fuzztime $(FUZZTIME) ./gateway/broker
	go test -run '^$$' -fuzz '^FuzzDecodeFile$$' -fuzztime $(FUZZTIME) ./gateway/broker
	go test -run '^$$' -fuzz '^FuzzScanEvents$$' -fuzztime $(FUZZTIME) ./gateway/hub
	go test -run '^$$' -fuzz '^FuzzParseUsers$$' -fuzztime $(FUZZTIME) ./gateway
	go test -run '^$$' -fuzz '^FuzzFrameScanner$$' -fuzztime $(FUZZTIME) ./gateway/wsproxy/internal/wsframe

compare:
	cd bench && go run ./tablecompare
