package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/globalsession/globalsession/gateway/broker"
	"github.com/globalsession/globalsession/relay"
)

// handle is the workers' logic: "echo ..." comes back to its sender; "set <x>" gets "ok"
// back to its sender and goes, as it came, to every member of the sender's group.
func handle(_ context.Context, msg *broker.Message) ([]broker.Reply, error) {
	switch {
	case bytes.HasPrefix(msg.Data, []byte("echo ")):
		return []broker.Reply{broker.ToSender(msg.Data)}, nil
	case bytes.HasPrefix(msg.Data, []byte("set ")):
		return []broker.Reply{broker.ToSender([]byte("ok")), broker.ToGroup(msg.Group, msg.Data)}, nil
	}
	return nil, fmt.Errorf("unknown request %.20q", msg.Data)
}

// serveWorker runs a worker (the child "worker") on the relay at relayAddr until SIGTERM.
func serveWorker(relayAddr, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := relay.Dial(ctx, relay.ClientConfig{Addr: relayAddr, Name: name})
	if err != nil {
		return fmt.Errorf("dial the relay: %w", err)
	}
	defer c.Close()
	w, err := broker.NewWorker(ctx, broker.WorkerConfig{Relay: c, Name: name, Handler: broker.HandlerFunc(handle)})
	if err != nil {
		return err
	}
	announce("READY", name)
	waitStop()
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	return w.Shutdown(sctx)
}
