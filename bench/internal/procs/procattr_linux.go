//go:build linux

package procs

import (
	"os/exec"
	"syscall"
)

// DieWithParent has the kernel kill cmd's process (with SIGKILL) when this one dies without
// stopping it, say when it is killed or crashes. Call it before cmd.Start; it replaces
// cmd.SysProcAttr.
func DieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
