//go:build linux

package eventloop

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestIORingABI checks every field of the structures shared with the kernel against the
// layout of include/uapi/linux/io_uring.h (the build itself checks the sizes and the
// fields the loops use: ioUringABIMismatch).
func TestIORingABI(t *testing.T) {
	for _, c := range []struct {
		v      any
		size   uintptr
		fields string // each field's name and offset, in order
	}{
		{ioUringSQE{}, 64, "opcode:0 flags:1 ioprio:2 fd:4 off:8 addr:16 len:24 msgFlags:28 userData:32 " +
			"bufIndex:40 personality:42 spliceFDIn:44 addr3:48 pad2:56"},
		{ioUringCQE{}, 16, "userData:0 res:8 flags:12"},
		{ioUringParams{}, 120, "sqEntries:0 cqEntries:4 flags:8 sqThreadCPU:12 sqThreadIdle:16 features:20 wqFD:24 " +
			"resv:28 sqOff:40 cqOff:80"},
		{ioSQRingOffsets{}, 40, "head:0 tail:4 ringMask:8 ringEntries:12 flags:16 dropped:20 array:24 resv1:28 userAddr:32"},
		{ioCQRingOffsets{}, 40, "head:0 tail:4 ringMask:8 ringEntries:12 overflow:16 cqes:20 flags:24 resv1:28 userAddr:32"},
	} {
		typ := reflect.TypeOf(c.v)
		var got []string
		for i := range typ.NumField() {
			got = append(got, fmt.Sprintf("%s:%d", typ.Field(i).Name, typ.Field(i).Offset))
		}
		assert.Equal(t, c.fields, strings.Join(got, " "), typ.Name())
		assert.Equal(t, c.size, typ.Size(), typ.Name())
	}
}
