package main

import (
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// dieWithParent makes the kernel kill cmd's process if this one dies without cleaning up.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

func signalNotify(c chan os.Signal) { signal.Notify(c, syscall.SIGTERM, os.Interrupt) }
