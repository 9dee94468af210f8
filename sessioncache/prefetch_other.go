//go:build !amd64

package sessioncache

import "unsafe"

// prefetch does nothing where the package has no prefetch instruction for it.
func prefetch(p unsafe.Pointer, n uintptr) {}
