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
	for i := 0; i < 1000 && sib.ReliefOf(relief.Aging) == 0; i++ { // wait for its subscription
		time.Sleep(time.Millisecond)
	}
	// The relay would do this when its table pushes a session out. It returns once the
	// aging server has the entry in its log.
	_ = sib.Evict(ctx, "auths", []byte("sid-1"), sessioncache.Entry{Value: []byte("alice"), Expiry: time.Now().Add(time.Hour), Rev: 1})
	s.Close()
	for i := 0; i < 1000 && sib.ReliefOf(relief.Aging) != 0; i++ { // wait until the sibling sees it gone
		time.Sleep(time.Millisecond)
	}

	s = start()
	defer s.Close()
	for i := 0; i < 1000 && sib.ReliefOf(relief.Aging) == 0; i++ {
		time.Sleep(time.Millisecond)
	}
	e, err := sib.Get(ctx, "auths", []byte("sid-1"))
	fmt.Println(string(e.Value), err)
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
	for i := 0; i < 1000 && sib.ReliefOf(relief.Expansion) == 0; i++ { // wait for its subscription
		time.Sleep(time.Millisecond)
	}

	_ = sib.Set(ctx, "auths", []byte("sid-2"), sessioncache.Entry{Value: []byte("bob")})
	fmt.Println(<-c.seen)
	// Output:
	// set sid-2
}

type counting struct {
	*relief.Server
	seen chan string
}

func (c *counting) Set(ctx context.Context, path string, key []byte, e sessioncache.Entry) error {
	c.seen <- "set " + string(key)
	return c.Server.Set(ctx, path, key, e)
}
