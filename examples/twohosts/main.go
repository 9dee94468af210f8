// Command twohosts shows the session tier across hosts: a relay with its sibling, and two
// "hosts", each a sessioncache.Manager with its own shared-memory table, connected to the
// relay. A session set on one host is read on the other; a logout on one is gone on both.
//
//	go run ./examples/twohosts
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

func main() {
	dir, err := os.MkdirTemp("", "twohosts")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The relay tier: a relay with its own table, and its sibling in the same process.
	r, err := relay.NewRelay(relay.RelayConfig{
		Addr:  "127.0.0.1:0",
		Table: sessioncache.Config{Path: filepath.Join(dir, "relay.table"), ElementCount: 10000, RecordSize: 384},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	sib, err := relay.NewSibling(relay.SiblingConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	defer sib.Close()
	r.SetLower(sib)
	fmt.Printf("relay on %s, its sibling on %s\n", r.Addr(), sib.Addr())

	host := func(name string) *sessioncache.Manager {
		c, err := relay.Dial(ctx, relay.ClientConfig{Addr: r.Addr().String(), Name: name})
		if err != nil {
			log.Fatal(err)
		}
		m, err := sessioncache.New(sessioncache.Config{
			Path: filepath.Join(dir, name+".table"), Create: true, ElementCount: 1000, RecordSize: 384,
		}, c)
		if err != nil {
			log.Fatal(err)
		}
		return m
	}
	a, b := host("host-a"), host("host-b")
	defer a.Close()
	defer b.Close()

	sid := []byte("sid-7f3a")
	if err := a.Set(ctx, sid, []byte(`{"user":"alice"}`), 30*time.Minute); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("host-a: logged alice in as %s\n", sid)

	v, err := b.Get(ctx, sid)
	fmt.Printf("host-b: get %s = %s (err %v)\n", sid, v, err)

	if err := b.Delete(ctx, sid); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("host-b: logged %s out\n", sid)
	// Host A hears of the logout through its subscription; wait (bounded) for it.
	for i := 0; i < 100; i++ {
		if _, err := a.Table().Get(sid); errors.Is(err, sessioncache.ErrNotFound) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, err = a.Get(ctx, sid)
	fmt.Printf("host-a: get %s now says: %v\n", sid, err)
}
