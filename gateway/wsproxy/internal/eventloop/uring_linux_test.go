//go:build linux

package eventloop

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestIORingBatches drives the ring directly: a batch larger than the submission queue,
// results matched to their operations, EAGAIN for a socket with nothing to read, and the
// error of a send to a closed peer.
func TestIORingBatches(t *testing.T) {
	r, err := newIORing()
	if err != nil {
		t.Skipf("no io_uring here: %v", err)
	}
	defer r.close()
	const n = ioRingEntries + 44
	var a, b [n]int
	for i := range n {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		a[i], b[i] = fds[0], fds[1]
	}
	defer func() {
		for i := range n {
			for _, fd := range []int{a[i], b[i]} {
				if fd >= 0 {
					unix.Close(fd)
				}
			}
		}
	}()
	ops := make([]ioOp, n)
	for i := range ops {
		ops[i] = ioOp{fd: a[i], buf: fmt.Appendf(nil, "message %d", i), send: true}
	}
	require.NoError(t, r.do(ops))
	for i, op := range ops {
		require.True(t, op.done)
		require.Zero(t, op.err, "send %d", i)
		require.Equal(t, len(op.buf), op.n, "send %d", i)
	}
	for i := range ops {
		ops[i] = ioOp{fd: b[i], buf: make([]byte, 64)}
	}
	require.NoError(t, r.do(ops))
	for i, op := range ops {
		require.Zero(t, op.err, "recv %d", i)
		assert.Equal(t, fmt.Sprintf("message %d", i), string(op.buf[:op.n]))
	}
	// Nothing more to read: non-blocking receives fail with EAGAIN instead of waiting.
	require.NoError(t, r.do(ops[:3]))
	for _, op := range ops[:3] {
		assert.Equal(t, unix.EAGAIN, op.err)
	}
	// A send to a closed peer fails; the end of a stream reads as 0 bytes.
	unix.Close(b[0])
	unix.Close(a[1])
	b[0], a[1] = -1, -1
	two := []ioOp{{fd: a[0], buf: []byte("lost"), send: true}, {fd: b[1], buf: make([]byte, 8)}}
	require.NoError(t, r.do(two))
	assert.Equal(t, unix.EPIPE, two[0].err)
	assert.Zero(t, two[1].err)
	assert.Zero(t, two[1].n)
}
