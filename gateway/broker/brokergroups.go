package broker

import (
	"context"
	"sync"
	"time"

	"github.com/globalsession/globalsession/sessioncache"
)

// group is a group with clients on this instance (or joining, or being left).
type group struct {
	mu         sync.Mutex                 // serializes the group's subscribe and unsubscribe
	subscribed bool                       // on the relay; under mu
	refs       int                        // clients joined or joining; under Broker.mu
	members    map[*brokerClient]struct{} // joined clients; under Broker.mu
}

// route delivers one reply.
func (b *Broker) route(ctx context.Context, c *brokerClient, rp Reply) error {
	m := outMsg{binary: rp.Binary, data: rp.Data}
	switch rp.Kind {
	case ReplyToSender:
		b.deliver(c, m)
		return nil
	case ReplyToClient:
		b.mu.Lock()
		to := b.clients[rp.Target]
		b.mu.Unlock()
		if to != nil {
			b.deliver(to, m)
			return nil
		}
	case ReplyToGroup:
		// This instance's members get it here; the relay fans it out to the other
		// instances with members (never back to this one, which published it).
		b.deliverGroup(rp.Target, m)
	}
	b.pushes.Add(1)
	return publishReply(ctx, b.cfg.Relay, rp)
}

func (b *Broker) deliver(c *brokerClient, m outMsg) {
	if c.send(m, b) {
		b.delivered.Add(1)
	}
}

func (b *Broker) deliverGroup(group string, m outMsg) {
	b.mu.Lock()
	var members []*brokerClient
	if g := b.groups[group]; g != nil {
		members = make([]*brokerClient, 0, len(g.members))
		for c := range g.members {
			members = append(members, c)
		}
	}
	b.mu.Unlock()
	for _, c := range members {
		b.deliver(c, m)
	}
}

// push is a reply the relay delivered to this instance: published, by another instance
// or a worker, on a group's path (GroupPath) or on this instance's inbox (InboxPath). On
// the wire it is a push envelope (see envelope.go); the broker handles it in this form.
type push struct {
	key string // the group's name on its path; on the inbox, the id of the client it is for
	msg outMsg // what the clients receive
}

// pushes is the relay boundary: it adapts fn to a relay subscription, decoding each
// delivery into a push. A delivery that is not one (a deletion, or an envelope that does
// not decode, with err saying why) goes to dropped instead.
func pushes(fn func(push), dropped func(err error)) func(sessioncache.Change) {
	return func(ch sessioncache.Change) {
		bin, data, err := decodePush(ch.Value)
		if err != nil || ch.Deleted {
			dropped(err)
			return
		}
		fn(push{key: string(ch.Key), msg: outMsg{binary: bin, data: append([]byte(nil), data...)}})
	}
}

// inbox returns the subscription callback of the instance's inbox.
func (b *Broker) inbox() func(sessioncache.Change) {
	return pushes(b.fromInbox, func(err error) {
		b.cfg.Logger.Warn("gateway: dropped a malformed push", "err", err)
	})
}

// fromInbox delivers a reply another instance or a worker addressed to one of this
// instance's clients.
func (b *Broker) fromInbox(p push) {
	b.mu.Lock()
	c := b.clients[p.key]
	b.mu.Unlock()
	if c != nil {
		b.deliver(c, p.msg)
	}
}

// fromGroup returns the subscription callback of a group's relay path.
func (b *Broker) fromGroup(group string) func(sessioncache.Change) {
	return pushes(func(p push) { b.deliverGroup(group, p.msg) }, func(err error) {
		b.cfg.Logger.Warn("gateway: dropped a malformed group push", "group", group, "err", err)
	})
}

// join registers c and adds it to its group, subscribing the group on the relay when it
// is the instance's first member. Each group has its own lock for this, so a slow relay
// holds up only the clients of the groups it is subscribing.
func (b *Broker) join(ctx context.Context, c *brokerClient) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errShuttingDown
	}
	g := b.groups[c.group]
	if g == nil {
		g = &group{members: map[*brokerClient]struct{}{}}
		b.groups[c.group] = g
	}
	g.refs++
	b.mu.Unlock()

	g.mu.Lock()
	var err error
	if !g.subscribed {
		if err = b.cfg.Relay.Subscribe(ctx, GroupPath(c.group), b.fromGroup(c.group)); err == nil {
			g.subscribed = true
		}
	}
	g.mu.Unlock()

	b.mu.Lock()
	if err == nil && b.closed {
		err = errShuttingDown
	}
	if err != nil {
		last := g.release()
		b.mu.Unlock()
		if last {
			b.unsubscribe(c.group, g)
		}
		return err
	}
	b.clients[c.id] = c
	g.members[c] = struct{}{}
	b.mu.Unlock()
	return nil
}

// leave forgets c, unsubscribing its group when it was the instance's last member.
func (b *Broker) leave(c *brokerClient) {
	b.mu.Lock()
	delete(b.clients, c.id)
	g := b.groups[c.group]
	delete(g.members, c)
	last := g.release()
	b.mu.Unlock()
	if last {
		b.unsubscribe(c.group, g)
	}
}

// release drops a reference to the group; Broker.mu is held. It reports whether it was the
// last.
func (g *group) release() bool {
	g.refs--
	return g.refs == 0
}

// unsubscribe ends the relay subscription of a group nobody here is in, unless a client
// joined meanwhile. The group stays in b.groups until then, so a client that joins during
// the unsubscribe waits on the same lock and subscribes again after it.
func (b *Broker) unsubscribe(name string, g *group) {
	g.mu.Lock()
	defer g.mu.Unlock()
	b.mu.Lock()
	idle := g.refs == 0
	b.mu.Unlock()
	if idle && g.subscribed {
		// With the relay unreachable the subscription is gone there already; the client
		// forgets it at once, so a short wait is enough.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := b.cfg.Relay.Unsubscribe(ctx, GroupPath(name)); err != nil {
			b.cfg.Logger.Debug("gateway: unsubscribe a group", "group", name, "err", err)
		}
		cancel()
		g.subscribed = false
	}
	b.mu.Lock()
	if g.refs == 0 && b.groups[name] == g {
		delete(b.groups, name)
	}
	b.mu.Unlock()
}
