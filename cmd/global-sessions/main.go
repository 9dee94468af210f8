// Command global-sessions runs one part of global-sessions, chosen by its config file:
//
//	global-sessions relay.conf      the midway relay and its sibling (edge_supported_relay)
//	global-sessions sibling.conf    a sibling endpoint on its own (half_edge)
//	global-sessions relief.conf     a pressure-relief server (full_edge, or lru + message_relay)
//	global-sessions discovery.conf  a discovery service with its session service (discovery)
//	global-sessions gateway.conf    the login and WebSocket gateway (gateway)
//	global-sessions                 an embedded single-host deployment on loopback
//
// Config files are JSON whose field names follow the original design's examples (see
// docs/configuration.md); // comments are allowed. SIGINT or SIGTERM stops it cleanly.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/globalsession/globalsession/sessioncache"
)

func main() {
	if done, code := runCommand(os.Args[1:]); done {
		os.Exit(code)
	}
	level := flag.String("log-level", "info", "log level: debug, info, warn or error")
	showVersion := flag.Bool("version", false, "print the build's version and exit")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage+"\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *showVersion {
		fmt.Println("global-sessions", version())
		return
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintln(os.Stderr, "global-sessions: -log-level:", err)
		os.Exit(2)
	}
	if flag.NArg() > 1 {
		flag.Usage()
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, flag.Arg(0), os.Stdout, log); err != nil {
		fmt.Fprintln(os.Stderr, "global-sessions:", err)
		if hint := tableHint(err); hint != "" {
			fmt.Fprintln(os.Stderr, "global-sessions:", hint)
		}
		os.Exit(1)
	}
}

// tableHint says how to get past a file that is in the way of a table: one of another
// shape or layout, or not a table at all (but not a missing one).
func tableHint(err error) string {
	var le *sessioncache.LayoutError
	if errors.Is(err, os.ErrNotExist) || !(errors.As(err, &le) || errors.Is(err, sessioncache.ErrNotTable)) {
		return ""
	}
	return `the process that creates a table (am_initializer or manage_section) replaces one of ` +
		`another shape or layout when its cache block sets "replace": true`
}
