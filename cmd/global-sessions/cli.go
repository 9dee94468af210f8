package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/globalsession/globalsession/internal/config"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// commands are the operator's subcommands, as redis-cli is for Redis.
var commands = map[string]func(args []string, out io.Writer) error{
	"check":  checkCommand,
	"get":    relayCommand("get", 1),
	"set":    relayCommand("set", 2),
	"del":    relayCommand("del", 1),
	"stats":  tableCommand("stats"),
	"verify": tableCommand("verify"),
}

const usage = `usage:
  global-sessions [-log-level L] [config-file]   run the role the file selects (none: the embedded default)
  global-sessions check config-file...           check config files without starting anything
  global-sessions get [-relay addr] KEY          read KEY from a relay
  global-sessions set [-relay addr] [-ttl D] KEY VALUE
  global-sessions del [-relay addr] KEY          delete KEY everywhere below the relay
  global-sessions stats -table PATH              a shared-memory table's counters
  global-sessions verify -table PATH             check a table's structure
  global-sessions -version                       the build's version

Roles: edge_supported_relay (a relay and its sibling), half_edge (a sibling), full_edge or
lru + message_relay (a pressure-relief server), a discovery block, a gateway block. Every
field of every role is in docs/configuration.md.
`

// version is the build's module version and VCS revision, from its build information.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v += " " + s.Value
		case "vcs.modified":
			if s.Value == "true" {
				v += " (modified)"
			}
		}
	}
	return v + " " + bi.GoVersion
}

// checkCommand loads each file as the binary would, and builds what can be built without
// starting anything (its TLS settings), reporting each file's role.
func checkCommand(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("check: give one or more config files")
	}
	var errs []error
	for _, path := range args {
		f, err := config.Load(path)
		if err == nil {
			err = checkTLS(f)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(out, "%s: ok, role %s\n", path, f.Role())
	}
	return errors.Join(errs...)
}

// checkTLS builds the file's TLS settings: their files exist and hold what they should.
func checkTLS(f *config.File) error {
	if _, err := serverTLS(f, f.TLS, "tls"); err != nil {
		return err
	}
	if f.Sibling != nil {
		if _, err := serverTLS(f, f.Sibling.TLS, "sibling.tls"); err != nil {
			return err
		}
	}
	if f.MessageRelay != nil && f.MessageRelay.Port != nil {
		if _, err := clientTLS(f, f.MessageRelay.TLS, "message_relay.tls", f.MessageRelay.Address); err != nil {
			return err
		}
	}
	if f.Gateway != nil {
		if _, err := serverTLS(f, f.Gateway.TLS, "gateway.tls"); err != nil {
			return err
		}
	}
	return nil
}

// relayCommand runs get, set or del against a relay; n is how many arguments it takes.
func relayCommand(name string, n int) func([]string, io.Writer) error {
	return func(args []string, out io.Writer) error {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		addr := fs.String("relay", "127.0.0.1:7878", "the relay's host:port")
		secret := fs.String("secret", "", "the relay's secret")
		path := fs.String("path", sessioncache.DefaultAuthPath, "the path (the auth path stores entries)")
		ttl := fs.Duration("ttl", 30*time.Minute, "set: the entry's lifetime")
		timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the relay")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() != n {
			return fmt.Errorf("%s takes %d argument(s), not %d", name, n, fs.NArg())
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		c, err := relay.Dial(ctx, relay.ClientConfig{Addr: *addr, Secret: *secret, Name: "global-sessions " + name})
		if err != nil {
			return err
		}
		defer c.Close()
		key := []byte(fs.Arg(0))
		switch name {
		case "get":
			e, err := c.Get(ctx, *path, key)
			if errors.Is(err, relay.ErrNotFound) {
				fmt.Fprintln(out, "(not found)")
				return nil
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s\n", e.Value)
			if !e.Expiry.IsZero() {
				fmt.Fprintf(out, "(expires in %v, revision %d)\n", time.Until(e.Expiry).Round(time.Second), e.Rev)
			}
			return nil
		case "set":
			return c.Publish(ctx, *path, key, sessioncache.Entry{Value: []byte(fs.Arg(1)), Expiry: time.Now().Add(*ttl)})
		default:
			return c.Delete(ctx, *path, key, sessioncache.Entry{})
		}
	}
}

// tableCommand runs stats or verify on a table file, attaching to it.
func tableCommand(name string) func([]string, io.Writer) error {
	return func(args []string, out io.Writer) error {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		path := fs.String("table", "", "the table's file (in /dev/shm, say)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *path == "" {
			return fmt.Errorf("%s: -table is required", name)
		}
		t, err := sessioncache.Open(sessioncache.Config{Path: *path})
		if err != nil {
			return err
		}
		defer t.Close()
		if name == "verify" {
			if err := t.Verify(); err != nil {
				return err
			}
			fmt.Fprintf(out, "%s: ok\n", *path)
			return nil
		}
		s := t.Stats()
		fmt.Fprintf(out, "entries %d of %d records (record size %d)\nhits %d misses %d\nsets %d deletes %d\n"+
			"evictions %d expired %d lock recoveries %d\n", s.Len, s.Capacity, t.RecordSize(), s.Hits, s.Misses,
			s.Sets, s.Deletes, s.Evictions, s.Expired, s.Recoveries)
		fmt.Fprintln(out, fileSystemLine(*path))
		return nil
	}
}

// runCommand runs an operator subcommand if args names one, and reports whether it did.
func runCommand(args []string) (bool, int) {
	if len(args) == 0 {
		return false, 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return false, 0
	}
	if err := cmd(args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "global-sessions:", err)
		return true, 1
	}
	return true, 0
}
