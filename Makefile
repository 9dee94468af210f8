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

tidy:
	go mod tidy
	cd bench && go mod tidy

bench:
	go test -run '^$$' -bench . ./...

fuzz:
	go test -run '^$$' -fuzz FuzzTableModel -fuzztime 60s ./sessioncache

compare:
	cd bench && go run ./tablecompare
