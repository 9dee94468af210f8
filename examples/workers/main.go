// Command workers runs a worker of the gateway's broker mode, or, without -relay, a demo of
// the whole path in one process.
//
// A worker joins a relay's worker queue and handles the messages that browsers send
// through gateway instances in broker mode (global-sessions with a "broker" block):
//
//	go run ./examples/workers -relay 127.0.0.1:7878 -name w1
//
// Start as many as you like, whenever you like: each joins on start and leaves when it
// stops or its connection drops, and the relay hands each message to one live worker.
//
// The demo starts a relay, two gateway instances, two workers and two browsers (WebSocket
// clients) on one workbook, one browser on each instance, and shows an edit reach both:
//
//	go run ./examples/workers
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/globalsession/globalsession/gateway/broker"
	"github.com/globalsession/globalsession/relay"
)

func main() {
	relayAddr := flag.String("relay", "", "the relay's host:port; empty runs the demo")
	secret := flag.String("secret", "", "the relay's shared secret")
	queue := flag.String("queue", broker.DefaultQueue, "the worker queue to serve")
	name := flag.String("name", "", "this worker's name (default host-pid)")
	concurrency := flag.Int("concurrency", 64, "messages handled at once")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if *relayAddr == "" {
		err = demo(ctx, os.Stdout)
	} else {
		err = serve(ctx, os.Stdout, *relayAddr, *secret, *queue, *name, *concurrency)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// serve runs one worker until ctx ends.
func serve(ctx context.Context, out io.Writer, addr, secret, queue, name string, concurrency int) error {
	c, err := relay.NewClient(relay.ClientConfig{Addr: addr, Secret: secret, Name: "worker " + name,
		BackoffMin: 20 * time.Millisecond, BackoffMax: time.Second})
	if err != nil {
		return err
	}
	defer c.Close()
	jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if name == "" {
		host, _ := os.Hostname()
		name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	wb := &Workbook{Name: name, Log: out}
	w, err := broker.NewWorker(jctx, broker.WorkerConfig{Relay: c, Queue: queue, Name: name, Handler: wb, Concurrency: concurrency})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "worker %s serving queue %q on relay %s\n", w.Name(), queue, addr)
	<-ctx.Done()
	sctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	return w.Shutdown(sctx)
}
