package sessioncache

import (
	"sync"

	"github.com/cespare/xxhash/v2"
)

// newestSeen remembers, per key, the highest revision a Manager wrote to its local table or
// saw from a relay, so that an older version arriving later does not replace a newer one:
// a change the relay delivered before it took this host's newer Set of the same key (the
// relay never sends a host its own writes back, so nothing would correct it), or a relay's
// answer to a Get that a newer change overtook.
//
// It holds a fixed number of slots indexed by the key's hash, so it costs the same memory
// at any write rate. It is lossy: a key whose slot another key took since is not protected,
// and an older version of it can then be kept until the key's next change, as if there were
// no record. Races on one key are short (the time a change takes to reach the host), so a
// slot is rarely reused within one.
type newestSeen struct {
	locks [64]sync.Mutex
	slots [newestSlots]seenSlot
}

const newestSlots = 1 << 16

type seenSlot struct{ tag, rev uint64 }

// admit reports whether a version of key with revision rev may be kept locally: it is not
// older than the newest version recorded for key. If so, it records rev. A revision of 0
// (unordered) is always admitted and never recorded.
func (n *newestSeen) admit(key []byte, rev uint64) bool {
	if rev == 0 {
		return true
	}
	h := xxhash.Sum64(key)
	tag := h | 1 // never 0, the tag of an empty slot
	i := h % newestSlots
	mu := &n.locks[i%uint64(len(n.locks))]
	mu.Lock()
	defer mu.Unlock()
	s := &n.slots[i]
	if s.tag == tag && s.rev > rev {
		return false
	}
	s.tag, s.rev = tag, rev
	return true
}
