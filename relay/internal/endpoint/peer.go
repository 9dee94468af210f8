package endpoint

import (
	"context"

	"github.com/globalsession/globalsession/internal/wire"
	"github.com/globalsession/globalsession/sessioncache"
)

// ID returns the name the peer gave in its hello (a relief server's relief name, say), or
// "" when it gave none.
func (p *Peer) ID() string { return p.id }

// Done returns a channel that is closed when the peer's connection ends.
func (p *Peer) Done() <-chan struct{} { return p.c.done }

// Reply answers the peer's request id with status, flags, value and expiry. It never waits
// for the socket, so a handler may reply on the reader goroutine. A request of id 0 (a set
// or evict with FlagNoReply) is never answered.
func (p *Peer) Reply(id uint64, status wire.Status, flags uint8, value []byte, expiry int64) {
	p.c.reply(id, status, flags, value, expiry)
}

// ReplyError answers the peer's request id with an error carrying msg.
func (p *Peer) ReplyError(id uint64, msg string) { p.c.replyError(id, msg) }

// ReplyEntry answers a get with an entry (err nil) or, for an error matching ErrNotFound,
// with not found and the revision of the key's tombstone when e.Deleted; any other err is
// an error reply.
func (p *Peer) ReplyEntry(id uint64, e sessioncache.Entry, err error) { p.c.replyEntry(id, e, err) }

// ReplyResult answers ok, not found or an error, according to err.
func (p *Peer) ReplyResult(id uint64, err error) { replyResult(p.c, id, err) }

// ServeBackend answers f, an entry request from the peer, with b, as a client answers its
// server's requests: in a goroutine of its own, with a copy of f, within the server's
// RequestTimeout.
func (p *Peer) ServeBackend(b Backend, f *wire.Frame) {
	go serveBackend(context.Background(), b, p.c, CopyFrame(f), p.srv.opts.RequestTimeout, false)
}

// Get asks the peer for the entry under key on path, as Client.Get asks a server.
func (p *Peer) Get(ctx context.Context, path string, key []byte) (sessioncache.Entry, error) {
	cl, err := p.c.roundTrip(ctx, &wire.Frame{Op: wire.OpGet, Path: []byte(path), Key: key})
	if err != nil {
		return sessioncache.Entry{}, err
	}
	defer putCall(cl)
	return entryOf(wire.OpGet, cl)
}

// Send sends the peer f, a request whose only useful answer is ok, and waits for the
// answer up to ctx's deadline (the server's RequestTimeout when it has none). Not found
// is ErrNotFound; an error reply is a *RemoteError.
func (p *Peer) Send(ctx context.Context, f *wire.Frame) error { return simple(ctx, p.c, f) }

// SendDeferred is Send for bulk traffic (hand-downs to relief servers): the request shares
// a write with the others sent meanwhile instead of a write system call of its own.
func (p *Peer) SendDeferred(ctx context.Context, f *wire.Frame) error {
	return simpleDeferred(ctx, p.c, f)
}

// WriteDeferred sends f, a request that gets no answer (FlagNoReply), in a write shared
// with the others sent meanwhile. It never waits.
func (p *Peer) WriteDeferred(f *wire.Frame) error { return p.c.writeDeferred(f) }
