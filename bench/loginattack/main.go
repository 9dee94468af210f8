// Command loginattack measures what a password-guessing attack costs real users: a
// gateway's login endpoint (bcrypt at its default cost) under 20 parallel failed logins
// from one address, while a real user logs in from another address, with the gateway's
// throttling of failed logins and without it (limits too high to bite), in one run.
//
//	cd bench && go run ./loginattack
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/sessioncache"
)

var (
	flagLogins   = flag.Int("logins", 20, "real logins measured per case")
	flagAttack   = flag.Int("attackers", 20, "parallel attackers")
	flagAttackIP = flag.String("attack-from", "127.0.0.1", "the attackers' address")
	flagUserIP   = flag.String("user-from", "127.0.0.2", "the real user's address")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loginattack:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "loginattack")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte("alice:"+string(hash)+"\nbob:"+string(hash)+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Printf("# a real login during a password-guessing attack\n\n%d attackers in parallel from %s, the user from %s; "+
		"bcrypt cost %d; %d CPUs, %s.\n\n", *flagAttack, *flagAttackIP, *flagUserIP, bcrypt.DefaultCost, runtime.NumCPU(), runtime.Version())
	fmt.Println("| gateway | real login: median | p90 | attack requests answered | of them 429 |")
	fmt.Println("|---|--:|--:|--:|--:|")
	for _, c := range []struct {
		name   string
		limits gateway.LoginLimits
	}{
		{"no throttling (limits too high to bite)", gateway.LoginLimits{UserBurst: 1 << 30, AddrBurst: 1 << 30, Checks: 1 << 20}},
		{"throttled (the defaults)", gateway.LoginLimits{}},
	} {
		row, err := measure(dir, users, c.limits)
		if err != nil {
			return err
		}
		fmt.Printf("| %s | %s\n", c.name, row)
	}
	return nil
}

// measure runs the attack against a fresh gateway and times the real user's logins.
func measure(dir, usersPath string, limits gateway.LoginLimits) (string, error) {
	m, err := sessioncache.NewManager(sessioncache.ManagerConfig{Table: sessioncache.Config{
		Path: filepath.Join(dir, fmt.Sprintf("t-%d.table", time.Now().UnixNano())), Create: true, ElementCount: 10000}})
	if err != nil {
		return "", err
	}
	defer m.Table().Remove()
	defer m.Close()
	signer, err := gateway.NewHS256Signer([]byte(strings.Repeat("k", 32)), "loginattack")
	if err != nil {
		return "", err
	}
	sessions, err := gateway.NewSessions(gateway.SessionsConfig{Store: m, Signer: signer})
	if err != nil {
		return "", err
	}
	users, err := gateway.NewUsersFile(usersPath)
	if err != nil {
		return "", err
	}
	srv := httptest.NewServer(&gateway.Login{Sessions: sessions, Authenticator: users, Limits: limits})
	defer srv.Close()

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var answered, throttled atomic.Int64
	attacker := client(*flagAttackIP)
	for i := range *flagAttack {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				status, err := login(ctx, attacker, srv.URL, fmt.Sprintf("guess-%d", i%3), "wrong")
				if err != nil {
					continue
				}
				answered.Add(1)
				if status == http.StatusTooManyRequests {
					throttled.Add(1)
				}
			}
		})
	}
	time.Sleep(500 * time.Millisecond) // the attack is under way
	user := client(*flagUserIP)
	var took []time.Duration
	for range *flagLogins {
		start := time.Now()
		status, err := login(context.Background(), user, srv.URL, "alice", "s3cret")
		if err != nil {
			stop()
			wg.Wait()
			return "", err
		}
		if status != http.StatusOK {
			stop()
			wg.Wait()
			return "", fmt.Errorf("the real login got %d", status)
		}
		took = append(took, time.Since(start))
	}
	stop()
	wg.Wait()
	slices.Sort(took)
	return fmt.Sprintf("%v | %v | %d | %d |", took[len(took)/2].Round(time.Millisecond), took[len(took)*9/10].Round(time.Millisecond),
		answered.Load(), throttled.Load()), nil
}

// client is an HTTP client whose connections come from the local address ip.
func client(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
}

func login(ctx context.Context, c *http.Client, base, user, password string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/login",
		strings.NewReader(url.Values{"user": {user}, "password": {password}}.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
