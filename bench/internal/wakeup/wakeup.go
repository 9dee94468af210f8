// Package wakeup lets a comparison program measure with idle processors kept awake, for the
// figures of a machine's fast wake-up state.
//
// A virtual machine that halts an idle processor wakes it slowly (tens of microseconds for
// the host to run it again), and whether a small request finds the processor awake decides
// much of its latency; a host may also poll for a while before it halts, and how long
// changes from hour to hour. Holding a latency request of zero on /dev/cpu_dma_latency
// (the kernel's power-management quality-of-service interface) makes the idle loop poll
// instead of halting, which gives the fast wake-up state on demand; releasing it gives the
// machine back its own behaviour. Linux only, and it needs the right to open the device
// (root).
//
// The request acts through the kernel's cpuidle driver, which picks the idle state that
// meets it. A kernel without one (/sys/devices/system/cpu/cpuidle/current_driver says
// "none", as on some virtual machines) always halts an idle processor, whatever is asked,
// so HoldFast refuses there instead of reporting a state it cannot give; only booting
// with idle=poll keeps such a machine's idle processors polling.
//
// OneProcessor gives such a machine its fast state another way: with the load generator and
// every server it then starts on one processor, a thread that wakes another runs where the
// woken one will run, so no round trip waits for a halted processor. It measures what a
// round trip costs both ends without those wake-ups, not what parallel work would cost.
package wakeup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrNoIdleDriver means the kernel has no cpuidle driver, so a latency request cannot keep
// idle processors from halting.
var ErrNoIdleDriver = errors.New("wakeup: the kernel has no cpuidle driver (current_driver is none): idle processors halt whatever latency is requested, " +
	"so the fast wake-up state cannot be held on this machine (only the idle=poll boot option gives it)")

// idleDriverFile names the kernel's cpuidle driver.
const idleDriverFile = "/sys/devices/system/cpu/cpuidle/current_driver"

// HoldFast asks the kernel to keep idle processors polling until release is called. The
// caller must keep release reachable and call it: the request ends when the device's file
// is closed, which the garbage collector does to a file no longer referenced.
func HoldFast() (release func(), err error) {
	if noIdleDriver(idleDriverFile) {
		return nil, ErrNoIdleDriver
	}
	f, err := os.OpenFile("/dev/cpu_dma_latency", os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("wakeup: keeping idle processors awake needs /dev/cpu_dma_latency (Linux, root): %w", err)
	}
	if err := binary.Write(f, binary.NativeEndian, int32(0)); err != nil {
		f.Close()
		return nil, fmt.Errorf("wakeup: writing the latency request: %w", err)
	}
	// The request holds while the file stays open.
	return func() { f.Close() }, nil
}

// noIdleDriver reports whether the driver file says the kernel has no cpuidle driver. A
// file that cannot be read says nothing either way.
func noIdleDriver(file string) bool {
	b, err := os.ReadFile(file)
	return err == nil && strings.TrimSpace(string(b)) == "none"
}
