//go:build !amd64

package sessioncache

import "sync/atomic"

// On weakly ordered processors stores may become visible out of order, so writers publish
// with sync/atomic stores (release semantics, e.g. STLR on arm64).

func storeRelease32(p *uint32, v uint32) { atomic.StoreUint32(p, v) }

func storeRelease64(p *uint64, v uint64) { atomic.StoreUint64(p, v) }
