package sessioncache

import "unsafe"

// prefetch asks the processor to bring the n bytes at p (n > 0) into its caches, without
// waiting for them and without faulting.
//
//go:noescape
func prefetch(p unsafe.Pointer, n uintptr)
