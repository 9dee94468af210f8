package broker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/globalsession/globalsession/gateway/broker"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// A worker of a spreadsheet workbook: an edit is acknowledged to its sender and sent to
// everyone who has the workbook open, on any gateway instance.
func ExampleNewWorker() {
	dir, _ := os.MkdirTemp("", "worker-example")
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
	c, err := relay.Dial(ctx, relay.ClientConfig{Addr: r.Addr().String(), Name: "worker-1"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	w, err := broker.NewWorker(ctx, broker.WorkerConfig{Relay: c, Name: "worker-1",
		Handler: broker.HandlerFunc(func(ctx context.Context, m *broker.Message) ([]broker.Reply, error) {
			if len(m.Data) == 0 {
				return nil, fmt.Errorf("empty edit")
			}
			return []broker.Reply{
				broker.ToSender([]byte("saved")),
				broker.ToGroup(m.Group, fmt.Appendf(nil, "%s: %s", m.User, m.Data)),
			}, nil
		})})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()
	members, _ := c.Members(ctx, broker.QueuePath(broker.DefaultQueue))
	fmt.Println("queue members:", members)
	// Output:
	// queue members: [worker-1]
}
