//go:build linux

package eventloop

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// An event loop reads the sockets that epoll says are ready, and writes what it relays,
// in batches. With io_uring a batch is one system call however many sockets it holds: the
// loop puts a non-blocking recv or send for each into the submission queue and waits in
// io_uring_enter until all have completed. Where system calls are expensive (virtual
// machines) that is most of the cost of relaying a small message: a batch of 64 sends and
// receives on loopback costs 0.37x of the same calls made one by one on the machine this
// was measured on. Where io_uring is missing or forbidden (old kernels, seccomp profiles),
// loop.io makes the calls one by one. The kernel's structures are in uring_abi_linux.go.

// ioRingEntries is the submission queue's size: a batch larger than this takes more than
// one system call.
const ioRingEntries = 256

// ioOp is one non-blocking socket call of a batch, and its result.
type ioOp struct {
	fd   int
	buf  []byte // not empty
	send bool   // send (with MSG_NOSIGNAL) rather than recv
	n    int    // bytes moved; 0 at the end of a stream
	err  unix.Errno
	done bool // n and err are set
}

// sqe is the submission queue entry of op; userData identifies it in its completion.
func (op *ioOp) sqe(userData uint64) ioUringSQE {
	e := ioUringSQE{
		opcode:   ioringOpRecv,
		fd:       int32(op.fd),
		addr:     uint64(uintptr(unsafe.Pointer(&op.buf[0]))),
		len:      uint32(len(op.buf)),
		msgFlags: unix.MSG_DONTWAIT,
		userData: userData,
	}
	if op.send {
		e.opcode, e.msgFlags = ioringOpSend, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL
	}
	return e
}

// complete records the result of a completion: a byte count, or a negated errno.
func (op *ioOp) complete(res int32) {
	op.n, op.err, op.done = 0, 0, true
	if res < 0 {
		op.err = unix.Errno(-res)
	} else {
		op.n = int(res)
	}
}

// ioRing is an io_uring instance used by one goroutine. Its slices and pointers are views
// of the kernel's mappings.
type ioRing struct {
	fd      int
	rings   []byte // the submission and completion rings (one mapping, or the first of two)
	cqRings []byte // the completion ring when the kernel maps it apart
	sqeMem  []byte // the submission queue entries

	sqHead, sqTail *uint32
	sqMask         uint32
	sqArray        []uint32     // indexes into sqes, in submission order
	sqes           []ioUringSQE // the entries
	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []ioUringCQE
}

// newIORing sets up an io_uring, or fails when the system has none.
func newIORing() (*ioRing, error) {
	p := ioUringParams{flags: ioringSetupSubmitAll}
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, ioRingEntries, uintptr(unsafe.Pointer(&p)), 0)
	if e == unix.EINVAL { // a kernel older than 5.18: no IORING_SETUP_SUBMIT_ALL
		p = ioUringParams{}
		fd, _, e = unix.Syscall(unix.SYS_IO_URING_SETUP, ioRingEntries, uintptr(unsafe.Pointer(&p)), 0)
	}
	if e != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", e)
	}
	r := &ioRing{fd: int(fd)}
	unix.CloseOnExec(r.fd)
	if err := r.mapRings(&p); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// mapRings maps the rings and entries that io_uring_setup described in p, and points the
// ring's views into them.
func (r *ioRing) mapRings(p *ioUringParams) error {
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(ioUringCQE{})))
	single := p.features&ioringFeatSingleMmap != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	const prot, flags = unix.PROT_READ | unix.PROT_WRITE, unix.MAP_SHARED | unix.MAP_POPULATE
	var err error
	if r.rings, err = unix.Mmap(r.fd, ioringOffSQRing, sqSize, prot, flags); err != nil {
		return fmt.Errorf("io_uring: map rings: %w", err)
	}
	cq := r.rings
	if !single {
		if r.cqRings, err = unix.Mmap(r.fd, ioringOffCQRing, cqSize, prot, flags); err != nil {
			return fmt.Errorf("io_uring: map completion ring: %w", err)
		}
		cq = r.cqRings
	}
	sqesSize := int(p.sqEntries) * int(unsafe.Sizeof(ioUringSQE{}))
	if r.sqeMem, err = unix.Mmap(r.fd, ioringOffSQEs, sqesSize, prot, flags); err != nil {
		return fmt.Errorf("io_uring: map submission entries: %w", err)
	}
	sq := unsafe.Pointer(&r.rings[0])
	r.sqHead = (*uint32)(unsafe.Add(sq, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.sqOff.tail))
	r.sqMask = *(*uint32)(unsafe.Add(sq, p.sqOff.ringMask))
	r.sqArray = unsafe.Slice((*uint32)(unsafe.Add(sq, p.sqOff.array)), p.sqEntries)
	r.sqes = unsafe.Slice((*ioUringSQE)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	cqp := unsafe.Pointer(&cq[0])
	r.cqHead = (*uint32)(unsafe.Add(cqp, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(cqp, p.cqOff.tail))
	r.cqMask = *(*uint32)(unsafe.Add(cqp, p.cqOff.ringMask))
	r.cqes = unsafe.Slice((*ioUringCQE)(unsafe.Add(cqp, p.cqOff.cqes)), p.cqEntries)
	return nil
}

// close unmaps the rings and closes the instance.
func (r *ioRing) close() {
	r.sqArray, r.sqes, r.cqes = nil, nil, nil
	for _, m := range [][]byte{r.sqeMem, r.cqRings, r.rings} {
		if m != nil {
			unix.Munmap(m)
		}
	}
	r.sqeMem, r.cqRings, r.rings = nil, nil, nil
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}

// errRingBroken reports an io_uring that stopped taking operations; the caller goes on
// without it.
var errRingBroken = errors.New("gateway: io_uring failed")

// do performs every op, ioRingEntries per system call, and returns when all have
// completed. It fails only if the ring itself does (which a valid ring never should); the
// ops without a result then fail with EIO rather than being retried, since they may have
// been carried out.
func (r *ioRing) do(ops []ioOp) error {
	for start := 0; start < len(ops); start += ioRingEntries {
		if err := r.doBatch(ops[start:min(len(ops), start+ioRingEntries)]); err != nil {
			for i := range ops {
				if !ops[i].done {
					ops[i].n, ops[i].err, ops[i].done = 0, unix.EIO, true
				}
			}
			return err
		}
	}
	return nil
}

// doBatch submits ops, at most ioRingEntries, and waits until all have completed.
func (r *ioRing) doBatch(ops []ioOp) error {
	tail := *r.sqTail
	for i := range ops {
		ops[i].done = false
		idx := (tail + uint32(i)) & r.sqMask
		r.sqes[idx] = ops[i].sqe(uint64(i))
		r.sqArray[idx] = idx
	}
	atomic.StoreUint32(r.sqTail, tail+uint32(len(ops))) // publishes the entries
	toSubmit, want := uint32(len(ops)), len(ops)
	for {
		want -= r.reap(ops)
		if want <= 0 {
			return nil
		}
		n, _, e := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(want),
			ioringEnterGetEvents, 0, 0)
		switch e {
		case 0:
			toSubmit -= min(toSubmit, uint32(n))
		case unix.EINTR, unix.EAGAIN, unix.EBUSY:
			// Interrupted, or out of resources for a moment: what was submitted is
			// counted by the kernel's head; wait again for the rest.
			toSubmit = tail + uint32(len(ops)) - atomic.LoadUint32(r.sqHead)
		default:
			return fmt.Errorf("%w: io_uring_enter: %w", errRingBroken, e)
		}
	}
}

// reap takes the completions the kernel has posted, records them in ops (their user data
// is the op's index) and returns how many ops they completed.
func (r *ioRing) reap(ops []ioOp) int {
	completed := 0
	head, tail := *r.cqHead, atomic.LoadUint32(r.cqTail)
	for ; head != tail; head++ {
		cqe := &r.cqes[head&r.cqMask]
		if i := cqe.userData; i < uint64(len(ops)) && !ops[i].done {
			ops[i].complete(cqe.res)
			completed++
		}
	}
	atomic.StoreUint32(r.cqHead, head)
	return completed
}
