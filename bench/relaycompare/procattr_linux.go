package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill cmd's process if this one dies without cleaning up
// (SIGKILL, a crash), so no redis-server outlives the benchmark.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
