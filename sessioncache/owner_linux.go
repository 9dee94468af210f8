//go:build linux

package sessioncache

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// platformSupported reports whether shared-memory tables work here.
const platformSupported = true

// selfOwnerWord returns the lock word this process writes into locks it holds: its pid in the
// high 32 bits and the low 32 bits of its start time (clock ticks since boot) in the low 32
// bits. The start time tells a live process from a later one that reused a dead one's pid.
func selfOwnerWord() (uint64, error) {
	pid := os.Getpid()
	_, start, err := procStat(pid)
	if err != nil {
		return 0, fmt.Errorf("sessioncache: read own process start time: %w", err)
	}
	return ownerWord(pid, start), nil
}

func ownerWord(pid int, start uint64) uint64 {
	return uint64(uint32(pid))<<32 | start&0xffffffff
}

// ownerAlive reports whether the process named by a lock word still runs. A process that
// has exited (even if not yet reaped: a zombie) or whose pid now belongs to another process
// is dead.
func ownerAlive(word uint64) bool {
	pid := int(word >> 32)
	if pid <= 0 {
		return false
	}
	state, start, err := procStat(pid)
	if err != nil {
		return !os.IsNotExist(err) // unreadable for another reason: assume alive, never steal wrongly
	}
	if state == 'Z' || state == 'X' || state == 'x' {
		return false
	}
	return start&0xffffffff == word&0xffffffff
}

// procStat reads a process's state letter and start time from /proc/<pid>/stat.
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may contain spaces or ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state); field 22 (starttime) is fields[19].
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat: starttime: %w", pid, err)
	}
	return fields[0][0], start, nil
}
