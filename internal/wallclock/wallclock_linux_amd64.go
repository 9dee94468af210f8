package wallclock

import "syscall"

// Nanos returns the wall clock as Unix nanoseconds, to the microsecond.
func Nanos() int64 {
	var tv syscall.Timeval
	if err := syscall.Gettimeofday(&tv); err != nil {
		return nanosFallback()
	}
	return tv.Nano()
}
