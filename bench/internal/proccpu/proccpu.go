// Package proccpu reads how much CPU time a process (and its children) has used, from /proc,
// for comparison programs that report CPU per operation.
package proccpu

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Process returns the CPU time that process pid and its child processes have used so
// far, summed over their threads from /proc/<pid>/task/<tid>/schedstat (nanoseconds on a
// CPU, finer than the clock ticks of /proc/<pid>/stat). It counts nginx's master and worker
// together, and every thread of a Go server.
func Process(pid int) time.Duration {
	total := Threads(pid)
	for _, child := range children(pid) {
		total += Threads(child)
	}
	return total
}

// Threads returns the CPU time used so far by the threads of process pid.
func Threads(pid int) time.Duration {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/schedstat")
	var total time.Duration
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		if fields := strings.Fields(string(b)); len(fields) > 0 {
			ns, _ := strconv.ParseInt(fields[0], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}

// children lists the processes whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command name (field 2) is in parentheses and may hold spaces; the parent
		// pid is the second field after it.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}
