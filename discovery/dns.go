package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DNSModeA is the DNS mode that lists the A and AAAA records of a name, all on
// the configured port.
const DNSModeA = "a"

// DNSModeSRV is the DNS mode that lists the SRV records of a name, each target
// on the port its record gives.
const DNSModeSRV = "srv"

// dnsDefaultTimeout bounds one DNS.Targets call when DNSConfig.Timeout is zero.
const dnsDefaultTimeout = 2 * time.Second

// DNSConfig configures a DNS provider. Every field but Name has a default: its
// zero value means what its comment says.
type DNSConfig struct {
	// Name is the domain name to look up, such as "engine.example.com" (mode "a")
	// or "_qix._tcp.example.com" (mode "srv"). It is asked as an absolute name: no
	// search domain is appended.
	Name string
	// Mode is DNSModeA ("a": the A and AAAA records of Name, each on Port) or
	// DNSModeSRV ("srv": the SRV records of Name, each target on the port of its
	// record, its host being the A and AAAA records of the SRV target, or the
	// target name itself when it has none). Empty means "srv" when Name starts
	// with "_", else "a".
	Mode string
	// Port is the port of every target in mode "a", where it is required. Mode
	// "srv" ignores it.
	Port int
	// Server is the "host:port" of the DNS server to ask; a server without a
	// port means port 53. Empty means the system's resolver configuration (every
	// nameserver of /etc/resolv.conf, with its options).
	Server string
	// Timeout bounds one Targets call, all of its queries included. Zero means
	// 2 seconds.
	Timeout time.Duration
}

// DNS is a Provider that lists the instances a DNS name resolves to, through
// either its A and AAAA records or its SRV records. It resolves with the standard
// library's resolver (net.Resolver, the pure Go one), which asks over UDP and again
// over TCP when an answer is truncated. A DNS is safe for concurrent use.
type DNS struct {
	name     string // as configured, for Name, labels and errors
	fqdn     string // name as asked
	mode     string
	port     string
	server   string // "" for the system's configuration
	timeout  time.Duration
	resolver *net.Resolver
}

var _ Provider = (*DNS)(nil)

// NewDNS returns a DNS provider for cfg. It fails when the name is missing or
// malformed, the mode is unknown, or mode "a" has no valid port.
func NewDNS(cfg DNSConfig) (*DNS, error) {
	name := strings.TrimSpace(cfg.Name)
	if name == "" {
		return nil, errors.New("discovery: dns: empty name")
	}
	if !validDomainName(name) {
		return nil, fmt.Errorf("discovery: dns %s: not a valid domain name", name)
	}
	mode := strings.ToLower(cfg.Mode)
	if mode == "" {
		mode = DNSModeA
		if strings.HasPrefix(name, "_") {
			mode = DNSModeSRV
		}
	}
	switch mode {
	case DNSModeA:
		if cfg.Port < 1 || cfg.Port > 65535 {
			return nil, fmt.Errorf("discovery: dns %s: mode %q needs a port in 1..65535, have %d", name, mode, cfg.Port)
		}
	case DNSModeSRV:
	default:
		return nil, fmt.Errorf("discovery: dns %s: unknown mode %q (want %q or %q)", name, cfg.Mode, DNSModeA, DNSModeSRV)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("discovery: dns %s: negative timeout %v", name, cfg.Timeout)
	}
	d := &DNS{name: name, fqdn: strings.TrimSuffix(name, ".") + ".", mode: mode, port: strconv.Itoa(cfg.Port),
		timeout: cmp.Or(cfg.Timeout, dnsDefaultTimeout)}
	if server := strings.TrimSpace(cfg.Server); server != "" {
		if _, _, err := net.SplitHostPort(server); err != nil {
			server = net.JoinHostPort(strings.Trim(server, "[]"), "53")
		}
		d.server = server
	}
	d.resolver = &net.Resolver{PreferGo: true, StrictErrors: true, Dial: d.dial}
	return d, nil
}

// dial connects the resolver to the configured server (or the one it chose from the
// system's configuration), and closes the connection when ctx is canceled: the resolver
// itself obeys only ctx's deadline while it waits for an answer.
func (d *DNS) dial(ctx context.Context, network, address string) (net.Conn, error) {
	if d.server != "" {
		address = d.server
	}
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	if uc, ok := c.(*net.UDPConn); ok {
		return &dnsUDPConn{UDPConn: uc, stop: stop}, nil // the resolver tells UDP by net.PacketConn
	}
	return &dnsStreamConn{Conn: c, stop: stop}, nil
}

// dnsUDPConn and dnsStreamConn are connections that stop watching their context when
// closed.
type (
	dnsUDPConn struct {
		*net.UDPConn
		stop func() bool
	}
	dnsStreamConn struct {
		net.Conn
		stop func() bool
	}
)

func (c *dnsUDPConn) Close() error    { c.stop(); return c.UDPConn.Close() }
func (c *dnsStreamConn) Close() error { c.stop(); return c.Conn.Close() }

// validDomainName reports whether name is a domain name a resolver asks: labels of 1 to
// 63 bytes without spaces, quotes or backslashes, 253 bytes in all without a final dot.
func validDomainName(name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || strings.ContainsAny(label, " \t\r\n\"\\") {
			return false
		}
	}
	return true
}

// Name implements Provider: it is "dns " followed by the configured name.
func (d *DNS) Name() string { return "dns " + d.name }

// Targets implements Provider. It returns one target per address (mode "a") or
// per SRV target address (mode "srv"), sorted by SRV priority, then by
// descending SRV weight, then by address (IP addresses in numeric order, IPv4
// first, before host names), without duplicate addresses. A name that does not
// exist or has no record of the wanted type is an error, as is any failed query:
// the caller keeps its last good list.
func (d *DNS) Targets(ctx context.Context) ([]Target, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	var (
		found []dnsFound
		err   error
	)
	if d.mode == DNSModeSRV {
		found, err = d.srvTargets(ctx)
	} else {
		found, err = d.aTargets(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("discovery: dns %s: %w", d.name, err)
	}
	slices.SortStableFunc(found, func(a, b dnsFound) int {
		return cmp.Or(
			cmp.Compare(a.priority, b.priority),
			cmp.Compare(b.weight, a.weight),
			compareHostPort(a.target.Addr, b.target.Addr),
		)
	})
	targets := make([]Target, 0, len(found))
	seen := make(map[string]bool, len(found))
	for _, f := range found {
		if seen[f.target.Addr] {
			continue
		}
		seen[f.target.Addr] = true
		targets = append(targets, f.target)
	}
	return targets, nil
}

// dnsFound is a target with the SRV priority and weight it is sorted by.
type dnsFound struct {
	target           Target
	priority, weight uint16
}

// errNoRecords is the answer for a name that does not exist or has no record of the type
// asked: the standard resolver does not tell the two apart.
var errNoRecords = errors.New("no such name, or no record of that type")

// aTargets lists the A and AAAA records of the name, each on the configured port.
func (d *DNS) aTargets(ctx context.Context) ([]dnsFound, error) {
	hosts, err := d.addresses(ctx, d.fqdn)
	if err != nil {
		return nil, err
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("no A or AAAA records: %w", errNoRecords)
	}
	found := make([]dnsFound, 0, len(hosts))
	for _, h := range hosts {
		addr := net.JoinHostPort(h, d.port)
		found = append(found, dnsFound{target: Target{
			ID:     addr,
			Addr:   addr,
			Labels: map[string]string{"dns_name": d.name},
		}})
	}
	return found, nil
}

// srvTargets lists the SRV records of the name, each target resolved through its own A
// and AAAA records, else taken as a host name.
func (d *DNS) srvTargets(ctx context.Context) ([]dnsFound, error) {
	_, records, err := d.resolver.LookupSRV(ctx, "", "", d.fqdn)
	if isNotFound(err) {
		return nil, fmt.Errorf("no SRV records: %w", errNoRecords)
	}
	if err != nil {
		return nil, d.queryError(ctx, "SRV", d.fqdn, err)
	}
	var srvs []*net.SRV
	for _, srv := range records {
		// A target of "." means the service is decidedly not available there.
		if srv.Target != "." && srv.Target != "" {
			srvs = append(srvs, srv)
		}
	}
	if len(srvs) == 0 {
		return nil, fmt.Errorf("no SRV records: %w", errNoRecords)
	}
	resolved := make(map[string][]string) // addresses by lower-case target name
	var found []dnsFound
	for _, srv := range srvs {
		k := strings.ToLower(srv.Target)
		hosts, ok := resolved[k]
		if !ok {
			if hosts, err = d.addresses(ctx, srv.Target); err != nil {
				return nil, fmt.Errorf("SRV target %s: %w", srv.Target, err)
			}
			resolved[k] = hosts
		}
		targetName := strings.TrimSuffix(srv.Target, ".")
		if len(hosts) == 0 {
			hosts = []string{targetName}
		}
		port := strconv.Itoa(int(srv.Port))
		for _, h := range hosts {
			addr := net.JoinHostPort(h, port)
			found = append(found, dnsFound{
				target: Target{
					ID:   addr,
					Addr: addr,
					Labels: map[string]string{
						"dns_name":     d.name,
						"srv_target":   targetName,
						"srv_priority": strconv.Itoa(int(srv.Priority)),
						"srv_weight":   strconv.Itoa(int(srv.Weight)),
					},
				},
				priority: srv.Priority,
				weight:   srv.Weight,
			})
		}
	}
	return found, nil
}

// addresses returns the distinct addresses of the A and AAAA records of name: none when it
// has none or does not exist.
func (d *DNS) addresses(ctx context.Context, name string) ([]string, error) {
	var hosts []string
	for _, q := range []struct{ network, qtype string }{{"ip4", "A"}, {"ip6", "AAAA"}} {
		addrs, err := d.resolver.LookupNetIP(ctx, q.network, name)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, d.queryError(ctx, q.qtype, name, err)
		}
		for _, a := range addrs {
			hosts = dnsAppendNew(hosts, a.Unmap().String())
		}
	}
	return hosts, nil
}

// isNotFound reports whether err says a name does not exist or has no record of the type.
func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// queryError describes a failed query; when ctx ended, it wraps ctx's error.
func (d *DNS) queryError(ctx context.Context, qtype, name string, err error) error {
	server := d.server
	if server == "" {
		server = "the system's nameservers"
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("query %s %s at %s: no answer: %w", qtype, name, server, ctxErr)
	}
	return fmt.Errorf("query %s %s at %s: %w", qtype, name, server, err)
}

// dnsAppendNew appends s to list unless list holds it already.
func dnsAppendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// compareHostPort orders "host:port" addresses: IP addresses first, in address
// order (IPv4 before IPv6), then host names in string order, each by port next.
func compareHostPort(a, b string) int {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	ipa, erra := netip.ParseAddr(ha)
	ipb, errb := netip.ParseAddr(hb)
	pna, _ := strconv.Atoi(pa)
	pnb, _ := strconv.Atoi(pb)
	switch {
	case erra == nil && errb == nil:
		return cmp.Or(ipa.Compare(ipb), cmp.Compare(pna, pnb), strings.Compare(a, b))
	case erra == nil:
		return -1
	case errb == nil:
		return 1
	}
	return cmp.Or(strings.Compare(ha, hb), cmp.Compare(pna, pnb), strings.Compare(a, b))
}
