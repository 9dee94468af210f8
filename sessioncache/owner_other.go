//go:build !linux

package sessioncache

// platformSupported reports whether shared-memory tables work here. Lock recovery reads
// /proc to tell whether a lock holder is alive, so only Linux is supported.
const platformSupported = false

func selfOwnerWord() (uint64, error) { return 0, ErrUnsupported }

func ownerAlive(uint64) bool { return true }
