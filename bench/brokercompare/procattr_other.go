//go:build !linux

package main

import (
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// dieWithParent does nothing here: only Linux has a parent-death signal.
func dieWithParent(*exec.Cmd) {}

// stopSignals delivers the signals a child stops on.
func stopSignals(c chan os.Signal) { signal.Notify(c, syscall.SIGTERM, os.Interrupt) }
