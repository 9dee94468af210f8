package sessioncache

import (
	"sync/atomic"
	"unsafe"
)

// prefault brings every page of the section into this process's page tables, writable,
// as Config.Prefault asks: with the system's call for it where there is one
// (populateWrite), and otherwise by adding zero to the first word of every page, an atomic
// change that changes nothing, so other processes may write meanwhile.
func (t *Table) prefault() {
	if populateWrite(t.mem) != nil {
		touchPages(t.mem)
	}
}

// touchPages adds zero to the first word of every 4 KiB of mem.
func touchPages(mem []byte) {
	const page = 4096
	base := unsafe.Pointer(&mem[0])
	for off := 0; off < len(mem); off += page {
		atomic.AddUint32((*uint32)(unsafe.Add(base, off)), 0)
	}
}
