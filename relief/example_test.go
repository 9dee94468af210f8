package relief_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/relief"
	"github.com/globalsession/globalsession/sessioncache"
)

// An aging relief server on a durable log, connected to a sibling: what the relay's table
// pushes out is kept, and survives a restart of the server.
func Example() {
	dir, _ := os.MkdirTemp("", "relief-example")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sib, err := relay.NewSibling(relay.SiblingConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sib.Close()

	start := func() *relief.Server {
		log, err := relief.OpenLog(relief.LogConfig{Path: filepath.Join(dir, "aging.log"), Sync: relief.SyncAlways})
		if err != nil {
			panic(err)
		}
		s, _ := relief.New(relief.Config{Kind: relief.Aging, ID: "aging-1", Store: log,
			Sibling: relay.ClientConfig{Addr: sib.Addr().String()}})
		_ = s.Start(ctx, nil)
		return s
	}
	s := start()
	// The relay would do this when its table pushes a session out.
	_ = sib.Evict(ctx, "auths", []byte("sid-1"), []byte("alice"), time.Now().Add(time.Hour))
	for i := 0; i < 1000 && s.Store().Len() == 0; i++ { // the eviction is streamed: wait for it
		time.Sleep(time.Millisecond)
	}
	s.Close()

	s = start()
	defer s.Close()
	v, _, err := sib.Get(ctx, "auths", []byte("sid-1"))
	fmt.Println(string(v), err)
	// Output:
	// alice <nil>
}

// Extending a relief server: embed *relief.Server, override what you need, pass yourself
// to Start.
func ExampleServer_Start() {
	dir, _ := os.MkdirTemp("", "relief-example")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sib, _ := relay.NewSibling(relay.SiblingConfig{Addr: "127.0.0.1:0"})
	defer sib.Close()

	srv, _ := relief.New(relief.Config{Kind: relief.Expansion, ID: "counted",
		Sibling: relay.ClientConfig{Addr: sib.Addr().String()},
		Memory:  sessioncache.Config{Path: filepath.Join(dir, "relief.table"), ElementCount: 100}})
	c := &counting{Server: srv, seen: make(chan string, 1)}
	_ = srv.Start(ctx, c)
	defer srv.Close()

	_ = sib.Set(ctx, "auths", []byte("sid-2"), []byte("bob"), time.Time{})
	fmt.Println(<-c.seen)
	// Output:
	// set sid-2
}

type counting struct {
	*relief.Server
	seen chan string
}

func (c *counting) Set(ctx context.Context, path string, key, value []byte, expiry time.Time) error {
	c.seen <- "set " + string(key)
	return c.Server.Set(ctx, path, key, value, expiry)
}
