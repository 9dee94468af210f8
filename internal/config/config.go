// Package config reads and checks the JSON configuration files of the global-sessions
// binary: their types, parsing (with // comments), and every check that can be made without
// starting anything, with errors that name the file, the line where known, and the field.
// The field names and meanings follow the configuration examples of the original design
// (edge_supported_relay, half_edge, path_types, cache, lru, message_relay, ...), with this
// project's additions documented in docs/configuration.md.
//
// It is not where the servers are built: cmd/global-sessions turns a checked File into the
// library's configs and starts them. This package imports only the standard library and
// the TLS helper.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/globalsession/globalsession/relay/tlsconfig"
)

// DefaultAuthPath is the auth path of a file that names none; it is the library's
// sessioncache.DefaultAuthPath.
const DefaultAuthPath = "auths"

// File is one configuration file. Which role it selects depends on its flags (those of the
// original examples): edge_supported_relay (the midway relay, with its sibling), half_edge
// (a sibling endpoint) and full_edge (a pressure-relief server), or a discovery or gateway
// block.
type File struct {
	// Name is the file the config was read from ("embedded default" for the default).
	Name string `json:"-"`
	// Dir is the directory relative paths in the file are resolved against.
	Dir string `json:"-"`
	// inRelay marks a relief_servers entry: its message_relay is the relay's own sibling,
	// filled in when the relay runs.
	inRelay bool

	EdgeSupportedRelay bool                `json:"edge_supported_relay"`
	HalfEdge           bool                `json:"half_edge"`
	FullEdge           bool                `json:"full_edge"`
	AuthPath           string              `json:"auth_path"`
	Port               *int                `json:"port"`
	Address            string              `json:"address"`
	Secret             string              `json:"secret"`
	TLS                *tlsconfig.Config   `json:"tls"`
	PathTypes          map[string]PathType `json:"path_types"`
	Cache              *Cache              `json:"cache"`
	Sibling            *Endpoint           `json:"sibling"`
	LRU                *LRU                `json:"lru"`
	MessageRelay       *Endpoint           `json:"message_relay"`
	// MyMessages is the relay of a front end's file (the original design's client
	// configuration: an lru block and a my_messages block), which a program loads with
	// relay/clientconfig; the binary runs no front end.
	MyMessages *Endpoint `json:"my_messages"`
	// FanOut turns delivery of publications to other front ends on or off (default on).
	FanOut *bool `json:"fan_out"`
	// MaxFrame is the largest protocol frame accepted, in bytes (default 1 MiB).
	MaxFrame int `json:"max_frame"`
	// MaxConns bounds the connections a relay or sibling serves at once (default 10,000;
	// -1 means no limit).
	MaxConns int `json:"max_conns"`
	// FrameBudget bounds the bytes of large frames (over 64 KiB) all connections hold at
	// once while they are received (default 64 MiB).
	FrameBudget int64 `json:"frame_budget"`
	// Replicas is how many relief servers of each kind the sibling gives each key
	// (default 1; 2 recommended).
	Replicas int `json:"replicas"`
	// TombstoneTTL is how long a deletion is kept at least by the relay and relief servers
	// when the entry it removes would have expired sooner, e.g. "1h" (the default).
	TombstoneTTL Duration `json:"tombstone_ttl"`
	// StreamBacklog is how many of its latest changes the relay keeps for front ends that
	// reconnect (default 16384).
	StreamBacklog int `json:"stream_backlog"`
	// OutboxDir is where the relay keeps evictions and deletions until its sibling has
	// confirmed them (default: beside the relay's table, with ".outbox" appended).
	OutboxDir string `json:"outbox_dir"`
	// OutboxLimit bounds the bytes of evictions and deletions the relay keeps until they
	// are confirmed (relay.RelayConfig.OutboxLimit; default 64 MiB).
	OutboxLimit int64 `json:"outbox_limit"`
	// HintDir is where the sibling keeps what absent relief servers should receive, and
	// the list of relief servers it knows (default: beside the relay's table, ".hints").
	HintDir string `json:"hint_dir"`
	// HintLimit bounds the bytes of hints the sibling keeps for one absent relief server
	// (relay.SiblingConfig.HintLimit; default 256 MiB).
	HintLimit int64 `json:"hint_limit"`
	// ReliefMembers are relief servers, as "kind/id", that own keys before they first
	// connect to the sibling (every one that connects is added and remembered).
	ReliefMembers []string `json:"relief_members"`
	// Relief configures a pressure-relief server (full_edge).
	Relief *Relief `json:"relief"`
	// Discovery configures a discovery service (and its session service).
	Discovery *Discovery `json:"discovery"`
	// Gateway configures the WebSocket gateway with its login sessions.
	Gateway *Gateway `json:"gateway"`
	// Admin opens the role's operator listener: /health, /ready and Prometheus /metrics.
	// Absent means none.
	Admin *Admin `json:"admin"`
	// ReliefServers are relief servers to run in the relay's process (the embedded default
	// uses this for a whole deployment in one process). Each is a relief config file's
	// content; their message_relay defaults to this relay's sibling.
	ReliefServers []*File `json:"relief_servers"`
}

// Admin is where a role's operator listener binds: keep it on loopback or a private
// network, since it needs no credentials.
type Admin struct {
	Address string `json:"address"`
	Port    *int   `json:"port"`
}

// Relief holds what a relief server needs beyond the lru and message_relay blocks of the
// original examples.
type Relief struct {
	// Kind is "expansion" (default) or "aging".
	Kind string `json:"kind"`
	// ID is the server's stable identity (default: host name and kind).
	ID string `json:"id"`
	// MaxLife caps how long an entry is kept, e.g. "15m" (default 15m for expansion, none
	// for aging).
	MaxLife Duration `json:"max_life"`
	// Log makes the store a durable append-only log (for aging servers).
	Log *LogBlock `json:"log"`
	// Redis makes the store Redis (one address, or several for a Redis Cluster).
	Redis *RedisBlock `json:"redis"`
}

// LogBlock configures a durable log store.
type LogBlock struct {
	Path string `json:"path"`
	// Sync is "interval" (default), "always" or "never".
	Sync      string   `json:"sync"`
	SyncEvery Duration `json:"sync_every"`
	// KeepExpiredFor is relief.LogConfig.KeepExpiredFor.
	KeepExpiredFor Duration `json:"keep_expired_for"`
}

// RedisBlock configures a Redis store.
type RedisBlock struct {
	Addrs    []string `json:"addrs"`
	Password string   `json:"password"`
	Prefix   string   `json:"prefix"`
	// KeepExpiredFor is relief.RedisConfig.KeepExpiredFor.
	KeepExpiredFor Duration `json:"keep_expired_for"`
}

// Duration is a time.Duration written as a Go duration string ("15m") in JSON.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"15m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// PathType configures one path type of the relay (the original examples' path_types entries).
type PathType struct {
	Relay *RelayLink `json:"relay"`
	Cache *Cache     `json:"cache"`
}

// RelayLink says how the relay reaches its sibling: proc_name runs it as a child process.
type RelayLink struct {
	ProcName []string `json:"proc_name"`
}

// Cache describes a shared-memory table (the original examples' cache block).
type Cache struct {
	// TokenPath names the section, as an ftok token file names a System V segment:
	// processes giving the same token_path and seed share one section. It is not read or
	// created.
	TokenPath string `json:"token_path"`
	// Path, if set, is the section file itself (overrides token_path).
	Path          string `json:"path"`
	AmInitializer *bool  `json:"am_initializer"`
	Seed          uint64 `json:"seed"`
	RecordSize    int    `json:"record_size"`
	ElCount       int    `json:"el_count"`
	MaxKeySize    int    `json:"max_key_size"`
	StopChild     *bool  `json:"stop_child"`
	// Replace lets a creator replace a section of another shape.
	Replace bool `json:"replace"`
	// Prefault brings the whole section into memory when the process opens it.
	Prefault bool `json:"prefault"`
}

// LRU is the original examples' lru block of a client or relief server.
type LRU struct {
	ManageSection bool   `json:"manage_section"`
	Cache         *Cache `json:"cache"`
}

// Endpoint is an address to serve on or connect to, with its TLS block (the original examples'
// message_relay block, and this project's sibling block).
type Endpoint struct {
	AuthPath string            `json:"auth_path"`
	Address  string            `json:"address"`
	Port     *int              `json:"port"`
	TLS      *tlsconfig.Config `json:"tls"`
	Secret   string            `json:"secret"`
}

// Error is a problem with a config file: which file, which field and what is wrong.
type Error struct {
	File  string
	Field string // JSON path of the field, e.g. "path_types.auths.cache.el_count"; may be empty
	Msg   string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("config %s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("config %s: %s: %s", e.File, e.Field, e.Msg)
}

// Load reads and checks the config file at path.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(b, path, filepath.Dir(abs))
}

// Parse decodes config bytes; name is used in errors and dir resolves relative paths. The
// JSON may carry // comments, as the original examples do. Unknown fields are errors.
func Parse(b []byte, name, dir string) (*File, error) {
	clean := stripComments(b)
	dec := json.NewDecoder(bytes.NewReader(clean))
	dec.DisallowUnknownFields()
	f := &File{Name: name, Dir: dir}
	if err := dec.Decode(f); err != nil {
		return nil, decodeError(name, clean, err)
	}
	if dec.More() {
		return nil, &Error{File: name, Msg: "more than one JSON value in the file"}
	}
	for i, r := range f.ReliefServers {
		if r == nil {
			return nil, &Error{File: name, Field: fmt.Sprintf("relief_servers[%d]", i), Msg: "null"}
		}
		r.Name, r.Dir, r.inRelay = fmt.Sprintf("%s (relief_servers[%d])", name, i), dir, true
		if r.MessageRelay == nil {
			r.MessageRelay = &Endpoint{} // filled in with the relay's sibling when it runs
		}
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	return f, nil
}

// decodeError turns a JSON error into one that names the file, the line and the field.
func decodeError(name string, b []byte, err error) error {
	line := func(off int64) int { return 1 + bytes.Count(b[:min(int(off), len(b))], []byte("\n")) }
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return &Error{File: name, Msg: fmt.Sprintf("line %d: %v", line(se.Offset-1), se)}
	case errors.As(err, &te):
		return &Error{File: name, Field: te.Field, Msg: fmt.Sprintf("line %d: is %s, want %s", line(te.Offset), te.Value, te.Type)}
	}
	const unknown = "json: unknown field "
	if msg := err.Error(); len(msg) > len(unknown) && msg[:len(unknown)] == unknown {
		return &Error{File: name, Field: msg[len(unknown):], Msg: "unknown field"}
	}
	return &Error{File: name, Msg: err.Error()}
}

// stripComments blanks // comments outside strings, keeping every newline and offset.
func stripComments(b []byte) []byte {
	out := append([]byte(nil), b...)
	inString, escaped := false, false
	for i := 0; i < len(out); i++ {
		c := out[i]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '/' && i+1 < len(out) && out[i+1] == '/':
			for ; i < len(out) && out[i] != '\n'; i++ {
				out[i] = ' '
			}
		}
	}
	return out
}

// Role is what a config file runs.
type Role string

// Roles.
const (
	RoleRelay     Role = "edge_supported_relay"
	RoleSibling   Role = "half_edge"
	RoleRelief    Role = "full_edge"
	RoleDiscovery Role = "discovery"
	RoleGateway   Role = "gateway"
	// RoleFrontEnd is a front end's file: an lru and a my_messages block, loaded by a
	// program (relay/clientconfig), not run by the binary.
	RoleFrontEnd Role = "front end"
)

// Role returns the role the file selects. A file with none of the flags but an lru and a
// message_relay block is a pressure-relief server, as the original relief example is.
func (f *File) Role() Role {
	switch {
	case f.EdgeSupportedRelay:
		return RoleRelay
	case f.HalfEdge:
		return RoleSibling
	case f.Discovery != nil && !f.FullEdge && f.LRU == nil:
		return RoleDiscovery
	case f.Gateway != nil && !f.FullEdge && f.LRU == nil:
		return RoleGateway
	case f.MyMessages != nil && !f.FullEdge && f.MessageRelay == nil:
		return RoleFrontEnd
	default:
		return RoleRelief
	}
}

func (f *File) check() error {
	n := 0
	for _, on := range []bool{f.EdgeSupportedRelay, f.HalfEdge, f.FullEdge} {
		if on {
			n++
		}
	}
	if n > 1 {
		return &Error{File: f.Name, Msg: "more than one of edge_supported_relay, half_edge and full_edge is set"}
	}
	if n == 0 && f.Discovery == nil && f.Gateway == nil && f.MyMessages == nil && (f.LRU == nil || f.MessageRelay == nil) {
		return &Error{File: f.Name, Msg: "no role: set edge_supported_relay, half_edge or full_edge, give lru and message_relay for a relief server, or a discovery block"}
	}
	if n > 0 && f.Discovery != nil {
		return &Error{File: f.Name, Field: "discovery", Msg: "a discovery service runs from a file of its own"}
	}
	if f.Gateway != nil && (n > 0 || f.Discovery != nil) {
		return &Error{File: f.Name, Field: "gateway", Msg: "a gateway runs from a file of its own"}
	}
	if f.Port != nil && (*f.Port < 0 || *f.Port > 65535) {
		return &Error{File: f.Name, Field: "port", Msg: fmt.Sprintf("%d is not a TCP port", *f.Port)}
	}
	switch f.Role() {
	case RoleRelay, RoleSibling:
		if f.Port == nil {
			return &Error{File: f.Name, Field: "port", Msg: "required"}
		}
	}
	if f.Role() == RoleRelay && f.PathTypes != nil {
		if _, ok := f.PathTypes[f.AuthPathOrDefault()]; !ok {
			return &Error{File: f.Name, Field: "path_types", Msg: fmt.Sprintf("no entry for auth_path %q", f.AuthPathOrDefault())}
		}
	}
	if f.MaxFrame < 0 {
		return &Error{File: f.Name, Field: "max_frame", Msg: "negative"}
	}
	if f.MaxConns < -1 {
		return &Error{File: f.Name, Field: "max_conns", Msg: "-1 (no limit), 0 (the default) or a positive count"}
	}
	if f.FrameBudget < 0 {
		return &Error{File: f.Name, Field: "frame_budget", Msg: "negative"}
	}
	if f.OutboxLimit < 0 {
		return &Error{File: f.Name, Field: "outbox_limit", Msg: "negative"}
	}
	if f.HintLimit < 0 {
		return &Error{File: f.Name, Field: "hint_limit", Msg: "negative"}
	}
	if f.Role() == RoleRelief && f.MessageRelay == nil {
		return &Error{File: f.Name, Field: "message_relay", Msg: "required: the sibling to connect to"}
	}
	if len(f.ReliefServers) > 0 && f.Role() != RoleRelay {
		return &Error{File: f.Name, Field: "relief_servers", Msg: "only a relay config runs relief servers in its process"}
	}
	return f.checkRole()
}

// AuthPathOrDefault returns the file's auth_path, or DefaultAuthPath when it names none.
func (f *File) AuthPathOrDefault() string {
	if f.AuthPath != "" {
		return f.AuthPath
	}
	return DefaultAuthPath
}

// HostPort joins an address and a port; an empty address means all interfaces and a
// missing port 0.
func HostPort(address string, port *int) string {
	p := 0
	if port != nil {
		p = *port
	}
	return net.JoinHostPort(strings.Trim(address, "[]"), strconv.Itoa(p))
}

// Resolve returns p resolved against the file's directory (an absolute or empty p as it
// is).
func (f *File) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) || f.Dir == "" {
		return p
	}
	return filepath.Join(f.Dir, p)
}

// TLSBlock returns a TLS block with its paths resolved against the file's directory, or
// nil when the block is absent or turns nothing on.
func (f *File) TLSBlock(t *tlsconfig.Config) *tlsconfig.Config {
	if t == nil || !t.Enabled() {
		return nil
	}
	r := t.Resolve(f.Dir)
	return &r
}
