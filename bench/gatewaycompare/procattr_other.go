//go:build !linux

package main

import (
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

func dieWithParent(*exec.Cmd) {}

func signalNotify(c chan os.Signal) { signal.Notify(c, syscall.SIGTERM, os.Interrupt) }
