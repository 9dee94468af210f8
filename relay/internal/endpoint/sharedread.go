package endpoint

import (
	"errors"
	"os"
	"runtime"
	"time"
)

// A client's connection over a raw socket or TLS may be read by the caller that waits for a reply
// instead of by its reader goroutine ("shared reading"). When a reply reaches a caller
// through the reader goroutine, readying the caller makes the Go runtime wake a second
// thread, on a second processor, to run one of them: a lone caller pays that hand-off on
// every request. Shared reading lets that caller read its own reply:
//
//   - Reading is a token (conn.reading): whoever holds it runs the read loop
//     (rawSocket.pump, or conn.readStream over TLS), handling every frame as the reader goroutine would; nobody else
//     reads. Whoever gives it back makes sure that calls still pending are read for.
//   - A caller whose context cannot be cancelled (its deadline is the sweeper's) takes the
//     token after writing its request if it is free, reads until its own reply is in (or
//     was handled by the reader before), and gives the token back.
//   - Any other caller, and one that finds the token taken, waits for its reply as before;
//     it wakes the reader goroutine if the token is free.
//   - The reader goroutine reads when woken, and gives the token back once it has
//     delivered replies to callers who could have read themselves and no call is pending
//     (such callers are about, and will read for themselves). Otherwise it keeps the
//     token and waits on the socket, so callers that cannot read themselves find it
//     reading, as before shared reading; and when the token stays free for idleAfter it
//     takes it again. So an idle connection is read: it answers its peer's pings and notices its
//     end within idleAfter; the first call after a pause is read for by the reader
//     goroutine, the following ones by their callers.
//   - A connection whose peer sends unasked (pushes to subscriptions, queues and streams,
//     requests to a backend) has its reader goroutine read always (conn.alwaysRead).
//   - A caller past its deadline while it reads is woken by the sweeper through a read
//     deadline in the past (conn.kick); whoever reads then clears it and carries on.
//   - A caller that reads its own reply, alone on the connection, polls the socket for it
//     (the raw socket, under TLS or not), for up to pollFor, before it sleeps: a reply that
//     comes meanwhile wakes no sleeping thread, which on a machine whose idle processors
//     halt is much of a small round trip's cost. It polls only while the connection's last
//     such reply came within pollFor (so a server that answers slowly costs no polling
//     after its first slow reply, and the next quick one turns polling back on), while no
//     call has had company on the connection for pollQuiet (callers that overlap, and the
//     goroutines that make their calls, need the processors a poller would hold: with four
//     connections of four callers each, polling cost a sixth of the throughput), and while
//     the runtime has more than one logical processor (with one, the caller polling would
//     hold the processor the reply needs).

// errYield ends a round of reading that did what it was for: the token goes back.
var errYield = errors.New("relay: reading handed back")

// sharedReader is the reader goroutine of a connection with shared reading. Woken, or
// finding the token free, it takes it and reads; it gives it back once it has delivered
// replies to callers who could have read themselves and no call is pending, unless the
// peer sends unasked. Otherwise it keeps reading, waiting on the socket: an idle
// connection notices at once that its peer closed it.
func (c *conn) sharedReader() {
	defer c.idleTimer.Stop()
	for {
		if c.reading.CompareAndSwap(false, true) {
			from := c.completed.Load()
			err := c.readShared(func() bool {
				return c.completed.Load() != from && !c.alwaysRead.Load() && !c.callsPending()
			}, 0)
			if err != nil {
				c.readFailedShared(err)
				return
			}
			c.release()
		}
		select {
		case <-c.readerWake:
		case <-c.done:
			if c.reading.CompareAndSwap(false, true) {
				c.in.Release() // nobody reads any more
			}
			return
		}
	}
}

// pollQuiet is how long a connection's calls must have gone without company before a
// caller polls for its reply.
const pollQuiet = 10 * time.Millisecond

// idleAfter is how long the token may stay free before the reader goroutine takes it
// back, so that an idle connection is read (its peer's pings, its end). With 2 ms a lone
// caller's round trip took 2-2.5 µs longer (37.5-38.2 µs against 35.8 with no timer; why
// was not looked into); with 50 ms it takes no longer.
const idleAfter = 50 * time.Millisecond

// release gives the token back; whoever gave it back then makes sure that calls still
// pending are read for, and that the reader goroutine takes the token back if it stays
// free (idleAfter).
func (c *conn) release() {
	c.reading.Store(false)
	if c.alwaysRead.Load() || c.callsPending() {
		c.wakeReader()
	}
	if c.idleArmed.CompareAndSwap(false, true) {
		c.idleTimer.Reset(idleAfter)
	}
}

// idleFire runs idleAfter after a release: if nobody reads, the reader goroutine takes
// the token.
func (c *conn) idleFire() {
	c.idleArmed.Store(false)
	if !c.reading.Load() {
		c.wakeReader()
	}
}

// wakeReader asks the reader goroutine to read.
func (c *conn) wakeReader() {
	select {
	case c.readerWake <- struct{}{}:
	default: // a wake-up is already due
	}
}

// readShared reads, holding the token, until enough says the round's purpose is met
// (checked before reading and after each batch of frames): it returns nil then, or the
// error that ended the connection's reading. Until pollUntil (monoNow; 0 for never) it
// polls a raw socket that has nothing to read instead of waiting for it.
func (c *conn) readShared(enough func() bool, pollUntil int64) error {
	if c.pollSock != nil {
		c.pollSock.pollUntil = pollUntil
		defer func() { c.pollSock.pollUntil = 0 }()
	}
	for {
		if enough() {
			// Done before reading: another reader may have handled what was awaited
			// before this one took the token.
			return nil
		}
		consume := func() error {
			if err := c.consume(); err != nil {
				return err
			}
			if enough() {
				return errYield
			}
			return nil
		}
		var err error
		if c.raw != nil {
			err = c.raw.pump(c.in, consume)
		} else {
			err = c.readStream(consume)
		}
		switch {
		case errors.Is(err, errYield):
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded) && c.closedErr() == nil:
			// A kick from the sweeper (or a stale one): clear it and look again.
			c.kicked.Store(false)
			c.nc.SetReadDeadline(time.Time{})
		default:
			return err
		}
	}
}

// readFailedShared ends the connection after reading failed, as the reader goroutine's
// end does.
func (c *conn) readFailedShared(err error) {
	c.in.Release()
	c.readFailed(err)
}

// awaitShared waits for cl's reply, reading it itself when it can (see above); the call
// was written.
func (c *conn) awaitShared(cl *call, cancellable bool) {
	if cancellable || c.alwaysRead.Load() || !c.reading.CompareAndSwap(false, true) {
		if !c.reading.Load() {
			c.wakeReader()
		}
		return
	}
	c.driver.Store(cl)
	var start, pollUntil int64
	if c.pollFor > 0 {
		start = monoNow()
		if !c.pollOff.Load() && start-c.companyAt.Load() > int64(pollQuiet) && runtime.GOMAXPROCS(0) > 1 && c.alonePending() {
			pollUntil = start + int64(c.pollFor)
			c.polls.Add(1)
		}
	}
	err := c.readShared(func() bool { return len(cl.done) > 0 }, pollUntil)
	c.driver.Store(nil)
	if err != nil {
		c.readFailedShared(err) // fails cl too
		return
	}
	if start != 0 {
		c.pollOff.Store(monoNow()-start > int64(c.pollFor))
	}
	c.ownReads.Add(1)
	c.release()
}

// kick wakes a caller that reads for cl, past its deadline: its wait for the socket ends.
func (c *conn) kick(cl *call) {
	if c.driver.Load() == cl && c.kicked.CompareAndSwap(false, true) {
		c.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

// readAlways makes the reader goroutine read from now on, for a peer that sends unasked.
func (c *conn) readAlways() {
	if !c.shared || c.alwaysRead.Swap(true) {
		return
	}
	c.wakeReader()
}
