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
// clients) on one workbook, one browser on each instance, and shows an edit reach both and
// the workbook's plot follow it:
//
//	go run ./examples/workers
//
// With -serve it starts the same servers and waits: open the page of each gateway instance
// in a browser of its own, log in, and edit cells in one; the other shows the edit and its
// plot (an SVG drawn by a worker) redrawn:
//
//	go run ./examples/workers -serve
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
	serveDemo := flag.Bool("serve", false, "start the demo's servers and wait (open their pages in browsers)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case *serveDemo:
		err = serveStack(ctx, os.Stdout)
	case *relayAddr == "":
		err = demo(ctx, os.Stdout)
	default:
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
	wb := &Workbook{Name: name, Log: out, Relay: c}
	w, err := broker.NewWorker(jctx, broker.WorkerConfig{Relay: c, Queue: queue, Name: name, Handler: wb, Files: wb,
		Concurrency: concurrency})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "worker %s serving queue %q on relay %s\n", w.Name(), queue, addr)
	<-ctx.Done()
	sctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	return w.Shutdown(sctx)
}

// serveStack runs the demo's servers until ctx ends.
func serveStack(ctx context.Context, out io.Writer) error {
	s, err := startStack(ctx, out)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(out, "open %s/ and %s/ in two browsers (Ctrl-C stops)\n", s.URLs[0], s.URLs[1])
	<-ctx.Done()
	return nil
}
