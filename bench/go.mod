module github.com/globalsession/globalsession/bench

go 1.26.8

require (
	github.com/VictoriaMetrics/fastcache v1.13.0
	github.com/coocood/freecache v1.2.7
	github.com/globalsession/globalsession v0.0.0
	github.com/redis/go-redis/v9 v9.23.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/edsrzf/mmap-go v1.2.0 // indirect
	github.com/golang/snappy v1.0.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)

replace github.com/globalsession/globalsession => ../
