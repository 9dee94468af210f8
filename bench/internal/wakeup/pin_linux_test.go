//go:build linux

package wakeup

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// threadSets returns the processor set of every thread of process pid.
func threadSets(t *testing.T, pid int) map[int]unix.CPUSet {
	t.Helper()
	entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]unix.CPUSet{}
	for _, e := range entries {
		tid, _ := strconv.Atoi(e.Name())
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &set); err != nil {
			continue // the thread ended
		}
		out[tid] = set
	}
	return out
}

func TestOneProcessorPinsItsProcessAndWhatItStarts(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep command")
	}
	var before unix.CPUSet
	if err := unix.SchedGetaffinity(os.Getpid(), &before); err != nil {
		t.Fatal(err)
	}
	procsBefore := runtime.GOMAXPROCS(0)
	cpu, release, err := OneProcessor()
	if err != nil {
		t.Fatal(err)
	}
	if !before.IsSet(cpu) {
		release()
		t.Fatalf("OneProcessor chose processor %d, which this process may not use", cpu)
	}
	child := exec.Command(sleep, "30")
	if err := child.Start(); err != nil {
		release()
		t.Fatal(err)
	}
	defer func() {
		child.Process.Kill()
		child.Wait()
	}()
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Errorf("GOMAXPROCS %d on one processor", n)
	}
	for _, pid := range []int{os.Getpid(), child.Process.Pid} {
		for tid, set := range threadSets(t, pid) {
			if set.Count() != 1 || !set.IsSet(cpu) {
				release()
				t.Fatalf("thread %d of process %d may run on %d processors after OneProcessor (processor %d)", tid, pid, set.Count(), cpu)
			}
		}
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	for tid, set := range threadSets(t, os.Getpid()) {
		if set != before {
			t.Errorf("thread %d has %d processors after release, %d before", tid, set.Count(), before.Count())
		}
	}
	if n := runtime.GOMAXPROCS(0); n != procsBefore {
		t.Errorf("GOMAXPROCS %d after release, %d before", n, procsBefore)
	}
}
