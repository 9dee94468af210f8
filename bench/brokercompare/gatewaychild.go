package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/broker"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// signingKey signs the session JWTs; both instances use it, as one deployment would.
var signingKey = []byte("brokercompare: a key of 32 bytes")

// serveGateway runs a gateway instance in broker mode (the child "gateway") until SIGTERM:
// its own session table at tablePath in front of the relay at relayAddr, so that a session
// created at either instance is found at the other through the relay; gateway.Login at
// /login/ and the broker at /ws/<group>.
func serveGateway(relayAddr, name, tablePath string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := relay.Dial(ctx, relay.ClientConfig{Addr: relayAddr, Name: name})
	if err != nil {
		return fmt.Errorf("dial the relay: %w", err)
	}
	defer c.Close()
	table := tableShape(tablePath)
	table.Create = true
	store, err := sessioncache.New(table, c)
	if err != nil {
		return err
	}
	defer store.Close()
	signer, err := gateway.NewHS256Signer(signingKey, "brokercompare")
	if err != nil {
		return err
	}
	sessions, err := gateway.NewSessions(gateway.SessionsConfig{Store: store, Signer: signer})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String()
	b, err := broker.NewBroker(ctx, broker.BrokerConfig{Relay: c, Sessions: sessions, Instance: name, Advertise: url,
		AllowAnonymous: true})
	if err != nil {
		ln.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/login/", &gateway.Login{Sessions: sessions, Anonymous: true})
	mux.Handle("/session", &gateway.Login{Sessions: sessions, Anonymous: true})
	mux.Handle("/ws/", b)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	announce("LISTEN", url)
	sig := make(chan struct{})
	go func() { waitStop(); close(sig) }()
	select {
	case <-sig:
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer scancel()
	if err := errors.Join(b.Shutdown(sctx), srv.Shutdown(sctx)); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
