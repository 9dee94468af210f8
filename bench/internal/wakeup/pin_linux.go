//go:build linux

package wakeup

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// OneProcessor restricts every thread of this process to one processor, the last it may
// use, and its Go runtime to one logical processor (GOMAXPROCS 1), until release is called,
// which gives back the processor set it had and the runtime's default GOMAXPROCS; it
// returns the processor. Threads and processes started meanwhile inherit the processor
// (a new thread or process takes its creator's set), and a Go program started then takes
// one logical processor from the start, as on a machine with one processor: start the
// servers to measure after calling it. (A Go program moved to one processor while it runs
// adopts it only when its runtime next rereads its set, which an idle one may not do for
// a long while.)
//
// On one processor no wake-up has to bring a halted processor back: the thread that wakes
// another runs on the processor the woken one will run on, which switches to it when the
// waker waits. That is the other wake-up state of a machine whose idle processors halt and
// that has no cpuidle driver to keep them polling (see HoldFast): per round trip, the work
// of both ends and a switch between them, without the wait for a processor to come out
// of halt.
func OneProcessor() (cpu int, release func() error, err error) {
	pid := os.Getpid()
	var saved unix.CPUSet
	if err := unix.SchedGetaffinity(pid, &saved); err != nil {
		return 0, nil, fmt.Errorf("wakeup: processors of this process: %w", err)
	}
	cpu = -1
	for i := range setBits {
		if saved.IsSet(i) {
			cpu = i
		}
	}
	if cpu < 0 {
		return 0, nil, errors.New("wakeup: this process may run on no processor")
	}
	var one unix.CPUSet
	one.Set(cpu)
	release = func() error {
		err := setThreads(pid, &saved)
		runtime.SetDefaultGOMAXPROCS()
		return err
	}
	if err := setThreads(pid, &one); err != nil {
		release()
		return 0, nil, err
	}
	runtime.GOMAXPROCS(1)
	return cpu, release, nil
}

// setBits is how many processors a unix.CPUSet can name.
const setBits = int(unsafe.Sizeof(unix.CPUSet{})) * 8

// setThreads gives every thread of process pid the processor set set. A thread started by
// one not yet changed keeps the old set, so the threads are listed again until a pass finds
// none it has not changed (at most a few passes: each changed thread's new threads inherit
// set).
func setThreads(pid int, set *unix.CPUSet) error {
	done := map[int]bool{}
	for range 10 {
		entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		if err != nil {
			return fmt.Errorf("wakeup: threads of process %d: %w", pid, err)
		}
		changed := false
		for _, e := range entries {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			// A thread that ended meanwhile (ESRCH) needs nothing.
			if err := unix.SchedSetaffinity(tid, set); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("wakeup: processors of thread %d of process %d: %w", tid, pid, err)
			}
			done[tid] = true
			changed = true
		}
		if !changed {
			return nil
		}
	}
	return fmt.Errorf("wakeup: process %d kept starting threads while its processors were set", pid)
}
