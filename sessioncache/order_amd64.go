package sessioncache

// On amd64 (total store order) the processor makes stores visible in program order, and the
// Go compiler keeps stores in program order, so a plain store is a release store. Writers use
// these for the sequence counter, lock release and record state instead of sync/atomic
// stores, which on amd64 are XCHG instructions that drain the store buffer and would make
// every Set wait for the cache misses of the value it just wrote.

func storeRelease32(p *uint32, v uint32) { *p = v }

func storeRelease64(p *uint64, v uint64) { *p = v }
