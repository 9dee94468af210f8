package relay_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// A relay with its own table, and a client that publishes a session and reads it back.
func Example() {
	dir, _ := os.MkdirTemp("", "relay-example")
	defer os.RemoveAll(dir)
	r, err := relay.NewRelay(relay.RelayConfig{
		Addr:  "127.0.0.1:0",
		Table: sessioncache.Config{Path: filepath.Join(dir, "relay.table"), ElementCount: 1000},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := relay.Dial(ctx, relay.ClientConfig{Addr: r.Addr().String(), Name: "front-1"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	_ = c.Publish(ctx, relay.DefaultAuthPath, []byte("sid-1"), sessioncache.Entry{Value: []byte("alice"), Expiry: time.Now().Add(time.Hour)})
	e, err := c.Get(ctx, relay.DefaultAuthPath, []byte("sid-1"))
	fmt.Println(string(e.Value), err)
	_, err = c.Get(ctx, relay.DefaultAuthPath, []byte("sid-2"))
	fmt.Println(err)
	// Output:
	// alice <nil>
	// sessioncache: not found
}

// Two front ends subscribe on the auth path: what one publishes or deletes reaches the other.
func ExampleClient_Subscribe() {
	dir, _ := os.MkdirTemp("", "relay-example")
	defer os.RemoveAll(dir)
	r, _ := relay.NewRelay(relay.RelayConfig{Addr: "127.0.0.1:0",
		Table: sessioncache.Config{Path: filepath.Join(dir, "relay.table"), ElementCount: 1000}})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, _ := relay.Dial(ctx, relay.ClientConfig{Addr: r.Addr().String()})
	defer a.Close()
	b, _ := relay.Dial(ctx, relay.ClientConfig{Addr: r.Addr().String()})
	defer b.Close()

	got := make(chan string, 2)
	_ = b.Subscribe(ctx, "auths", func(ch sessioncache.Change) {
		got <- fmt.Sprintf("%s deleted=%v value=%q", ch.Key, ch.Deleted, ch.Value)
	})
	_ = a.Publish(ctx, "auths", []byte("sid-9"), sessioncache.Entry{Value: []byte("bob")})
	_ = a.Delete(ctx, "auths", []byte("sid-9"), sessioncache.Entry{})
	fmt.Println(<-got)
	fmt.Println(<-got)
	// Output:
	// sid-9 deleted=false value="bob"
	// sid-9 deleted=true value=""
}

// A queue: two members join "jobs", and each request goes to one of them.
func ExampleClient_Join() {
	dir, _ := os.MkdirTemp("", "relay-queue-example")
	defer os.RemoveAll(dir)
	r, err := relay.NewRelay(relay.RelayConfig{Addr: "127.0.0.1:0",
		Table: sessioncache.Config{Path: filepath.Join(dir, "relay.table"), ElementCount: 1000}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, name := range []string{"worker-1", "worker-2"} {
		m, err := relay.Dial(ctx, relay.ClientConfig{Addr: r.Addr().String(), Name: name})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer m.Close()
		err = m.Join(ctx, "jobs", name, func(_ context.Context, _, value []byte) ([]byte, error) {
			return []byte("done: " + string(value)), nil
		})
		if err != nil {
			fmt.Println(err)
			return
		}
	}
	c, err := relay.Dial(ctx, relay.ClientConfig{Addr: r.Addr().String()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	members, _ := c.Members(ctx, "jobs")
	fmt.Println(members)
	answer, err := c.Request(ctx, "jobs", nil, []byte("resize image 7"))
	fmt.Println(string(answer), err)
	// Output:
	// [worker-1 worker-2]
	// done: resize image 7 <nil>
}
