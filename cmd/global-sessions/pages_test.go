package main

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMountOf(t *testing.T) {
	const info = `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
25 22 0:22 / /dev/shm rw,nosuid,nodev shared:2 - tmpfs tmpfs rw,size=12g,huge=never
26 22 0:23 / /var/run/global\040sessions rw,relatime shared:3 - tmpfs tmpfs rw,size=2g,huge=advise
27 25 0:24 / /dev/shm/inner rw - tmpfs tmpfs rw,huge=within_size
28 22 0:25 / /dev/shm rw - tmpfs tmpfs rw,huge=always
`
	cases := []struct {
		path, point, fsType, huge string
	}{
		{"/var/lib/x.table", "/", "ext4", ""},
		{"/dev/shm/relay.table", "/dev/shm", "tmpfs", "always"}, // mounted over the first /dev/shm
		{"/dev/shm/inner/a.table", "/dev/shm/inner", "tmpfs", "within_size"},
		{"/dev/shmx/a.table", "/", "ext4", ""},
		{"/var/run/global sessions/a.table", "/var/run/global sessions", "tmpfs", "advise"},
	}
	for _, c := range cases {
		m, ok := mountOf([]byte(info), c.path)
		if assert.True(t, ok, c.path) {
			assert.Equal(t, c.point, m.point, c.path)
			assert.Equal(t, c.fsType, m.fsType, c.path)
			assert.Equal(t, c.huge, m.option("huge"), c.path)
		}
	}
	_, ok := mountOf([]byte("garbage\n"), "/x")
	assert.False(t, ok)
}

func TestFileSystemLine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/dev/shm and /proc/self/mountinfo are Linux's")
	}
	// /dev/shm is a tmpfs on Linux; what its huge= option says depends on the machine.
	assert.Regexp(t, `^file system: tmpfs at /dev/shm(, no huge= option|, huge=\w+) \(`, fileSystemLine("/dev/shm/x.table"))
}
