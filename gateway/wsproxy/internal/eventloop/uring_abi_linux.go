//go:build linux

package eventloop

import "unsafe"

// The part of the io_uring ABI the loops use, as include/uapi/linux/io_uring.h defines it.
// golang.org/x/sys/unix has the system call numbers (unix.SYS_IO_URING_SETUP and
// unix.SYS_IO_URING_ENTER) but none of these constants or structures, so they are here,
// each once, under the header's names in Go's spelling.
const (
	// enum io_uring_op
	ioringOpSend = 26 // IORING_OP_SEND (Linux 5.6)
	ioringOpRecv = 27 // IORING_OP_RECV (Linux 5.6)

	// io_uring_params.flags: IORING_SETUP_SUBMIT_ALL (Linux 5.18), keep submitting the
	// batch after an operation fails to start.
	ioringSetupSubmitAll = 1 << 7
	// io_uring_params.features: IORING_FEAT_SINGLE_MMAP (Linux 5.4), one mapping holds
	// both rings.
	ioringFeatSingleMmap = 1 << 0
	// io_uring_enter flags: IORING_ENTER_GETEVENTS, wait for min_complete completions.
	ioringEnterGetEvents = 1 << 0

	// mmap offsets: IORING_OFF_SQ_RING, IORING_OFF_CQ_RING and IORING_OFF_SQES.
	ioringOffSQRing = 0
	ioringOffCQRing = 0x8000000
	ioringOffSQEs   = 0x10000000
)

// ioUringSQE is struct io_uring_sqe, one submission queue entry. Where the kernel has a
// union, the field is named after the member a send or recv uses and the comment lists
// the others.
type ioUringSQE struct {
	opcode      uint8  // IORING_OP_*
	flags       uint8  // IOSQE_*
	ioprio      uint16 // ioprio
	fd          int32  // the socket
	off         uint64 // off | addr2 | cmd_op, __pad1
	addr        uint64 // addr | splice_off_in | level, optname: the buffer
	len         uint32 // the buffer's length
	msgFlags    uint32 // msg_flags | rw_flags | poll32_events | fsync_flags | ...
	userData    uint64 // user_data, copied into the completion
	bufIndex    uint16 // buf_index | buf_group
	personality uint16 // personality
	spliceFDIn  int32  // splice_fd_in | file_index | optlen | addr_len, __pad3
	addr3       uint64 // addr3 | optval | cmd[]
	pad2        uint64 // __pad2[1]
}

// ioUringCQE is struct io_uring_cqe, one completion queue entry (without the big_cqe[]
// tail, which only rings set up with IORING_SETUP_CQE32 have).
type ioUringCQE struct {
	userData uint64 // user_data of the submission
	res      int32  // the call's result: a count, or -errno
	flags    uint32 // IORING_CQE_F_*
}

// ioUringParams is struct io_uring_params, which io_uring_setup reads and fills in.
type ioUringParams struct {
	sqEntries    uint32
	cqEntries    uint32
	flags        uint32 // IORING_SETUP_*
	sqThreadCPU  uint32
	sqThreadIdle uint32
	features     uint32 // IORING_FEAT_*
	wqFD         uint32
	resv         [3]uint32
	sqOff        ioSQRingOffsets
	cqOff        ioCQRingOffsets
}

// ioSQRingOffsets is struct io_sqring_offsets: where the submission ring's fields are in
// its mapping.
type ioSQRingOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

// ioCQRingOffsets is struct io_cqring_offsets: where the completion ring's fields are in
// its mapping.
type ioCQRingOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// ioUringABIMismatch is zero only if every size and offset in it is the kernel's (each
// term is the Go value XOR the ABI's, parenthesised: ^ and | have the same precedence);
// the array index after it fails to compile, on every architecture the package is built
// for, if one is not. TestIORingABI checks every
// field and says which one differs.
const ioUringABIMismatch = (unsafe.Sizeof(ioUringSQE{}) ^ 64) | (unsafe.Sizeof(ioUringCQE{}) ^ 16) |
	(unsafe.Sizeof(ioUringParams{}) ^ 120) | (unsafe.Sizeof(ioSQRingOffsets{}) ^ 40) |
	(unsafe.Sizeof(ioCQRingOffsets{}) ^ 40) | (unsafe.Offsetof(ioUringSQE{}.fd) ^ 4) |
	(unsafe.Offsetof(ioUringSQE{}.addr) ^ 16) | (unsafe.Offsetof(ioUringSQE{}.len) ^ 24) |
	(unsafe.Offsetof(ioUringSQE{}.msgFlags) ^ 28) | (unsafe.Offsetof(ioUringSQE{}.userData) ^ 32) |
	(unsafe.Offsetof(ioUringCQE{}.res) ^ 8) | (unsafe.Offsetof(ioUringParams{}.features) ^ 20) |
	(unsafe.Offsetof(ioUringParams{}.sqOff) ^ 40) | (unsafe.Offsetof(ioUringParams{}.cqOff) ^ 80) |
	(unsafe.Offsetof(ioSQRingOffsets{}.array) ^ 24) | (unsafe.Offsetof(ioCQRingOffsets{}.cqes) ^ 20)

var _ = [1]struct{}{}[ioUringABIMismatch]
