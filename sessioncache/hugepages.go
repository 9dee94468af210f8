package sessioncache

// Huge pages. A section on a tmpfs mapped with 4 KiB pages needs an address translation
// per page: at a million entries (about 440 MiB) that is over a hundred thousand of them,
// far more than the processor's TLB holds, so nearly every Get and Set of a scattered key
// also walks the page tables, and under a hypervisor that shadows them (as on the machine
// the benchmarks ran on) that walk can cost more than the memory access itself. Mapped
// with 2 MiB pages, the same section needs 220 translations.
//
// The table asks for huge pages on every mapping (MADV_HUGEPAGE on Linux); the system
// gives them where the section's file system allows it: a tmpfs mounted with huge=advise,
// huge=within_size or huge=always, or any tmpfs when
// /sys/kernel/mm/transparent_hugepage/shmem_enabled is "force". Elsewhere (/dev/shm's usual
// huge=never) the advice changes nothing and the table runs on 4 KiB pages as before.
// Pages take their size when first written, so it is the creator's mapping (and Prefault)
// that decides; processes that attach later map the same pages. docs/operations.md says
// how to set this up; HugePageBytes says whether it took.

// HugePageBytes reports how many bytes of this process's mapping of the section the system
// maps with huge pages (Linux's ShmemPmdMapped and FilePmdMapped for the mapping, in
// /proc/self/smaps). It is 0 where the section's file system gives none (see Config.Path).
// Reading smaps takes a few milliseconds in a large process: it is for operators and start-up
// logs, not for a request path.
func (t *Table) HugePageBytes() (int64, error) {
	if t.closed.Load() {
		return 0, ErrClosed
	}
	return hugeMappedBytes(t.mem)
}
