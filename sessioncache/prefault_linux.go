package sessioncache

import "golang.org/x/sys/unix"

// populateWrite asks Linux (5.14 and later) to fault in every page of mem, writable.
func populateWrite(mem []byte) error { return unix.Madvise(mem, unix.MADV_POPULATE_WRITE) }
