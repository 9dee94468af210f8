package main

import (
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// dieWithParent has the kernel kill cmd's process when this one dies without stopping it.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// stopSignals delivers the signals a child stops on.
func stopSignals(c chan os.Signal) { signal.Notify(c, syscall.SIGTERM, os.Interrupt) }
