// Package wallclock reads the wall clock as Unix nanoseconds at half the cost of
// time.Now, for the hot paths that compare expiries: time.Now reads two clocks (wall and
// monotonic), and an expiry needs only the wall one.
//
// It is not a monotonic clock: use time.Now for durations. On linux/amd64 the reading has
// microsecond resolution (gettimeofday, served without a system call); elsewhere it is
// time.Now's.
package wallclock
