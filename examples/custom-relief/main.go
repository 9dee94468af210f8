// Command custom-relief shows how to extend a pressure-relief server by embedding
// relief.Server (see audit.go): the extension keeps an audit trail, refuses to keep
// entries with a given key prefix, and answers an administration command.
//
//	go run ./examples/custom-relief
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/relief"
	"github.com/globalsession/globalsession/sessioncache"
)

func main() {
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(out *os.File) error {
	dir, err := os.MkdirTemp("", "custom-relief")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	sib, err := relay.NewSibling(relay.SiblingConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer sib.Close()
	srv, err := relief.New(relief.Config{Kind: relief.Expansion, ID: "audited",
		Sibling: relay.ClientConfig{Addr: sib.Addr().String()},
		Memory:  sessioncache.Config{Path: filepath.Join(dir, "relief.table"), ElementCount: 1000}})
	if err != nil {
		return err
	}
	defer srv.Close()
	a := &AuditedRelief{Server: srv, SkipPrefix: "csrf-"}
	dumped := make(chan struct{}, 1)
	if err := a.Start(ctx, out, dumped); err != nil {
		return err
	}
	fmt.Fprintf(out, "sibling on %s; audited expansion relief server subscribed\n", sib.Addr())

	// The sibling hands the server what a relay would: new entries, evictions, lookups.
	exp := time.Now().Add(time.Hour)
	for _, k := range []string{"sid-1", "csrf-abc", "sid-2"} {
		if err := sib.Set(ctx, "auths", []byte(k), sessioncache.Entry{Value: []byte("v"), Expiry: exp, Rev: 1}); err != nil {
			return err
		}
	}
	for _, k := range []string{"sid-1", "csrf-abc"} {
		_, err := sib.Get(ctx, "auths", []byte(k))
		fmt.Fprintf(out, "sibling asks for %s: %v\n", k, foundOr(err))
	}

	// An administrator publishes "dump" on the admin path.
	admin, err := relay.Dial(ctx, relay.ClientConfig{Addr: sib.Addr().String(), Name: "admin"})
	if err != nil {
		return err
	}
	defer admin.Close()
	fmt.Fprintln(out, "admin publishes dump:")
	if err := admin.Publish(ctx, AdminPath, []byte("dump"), sessioncache.Entry{}); err != nil {
		return err
	}
	select {
	case <-dumped:
	case <-ctx.Done():
		return ctx.Err()
	}
	st := srv.Stats()
	fmt.Fprintf(out, "the embedded server stored %d entries (%d sets, %d lookups, %d hits)\n", st.Entries, st.Sets, st.Gets, st.Hits)
	return nil
}

func foundOr(err error) string {
	if err != nil {
		return err.Error()
	}
	return "found"
}
