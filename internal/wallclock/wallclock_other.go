//go:build !(linux && amd64)

package wallclock

// Nanos returns the wall clock as Unix nanoseconds.
func Nanos() int64 { return nanosFallback() }
