package tlsrecord

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"sync"
)

// ErrNotHandedOver is the error of a Handoff that cannot be made; the connection stays
// with crypto/tls.
var ErrNotHandedOver = errors.New("tls: the connection cannot be handed over")

// ErrDataHeld is the error of a Handoff that finds data crypto/tls decrypted and nobody
// read: the peer sent it before it had the answer to its request (as a WebSocket client
// may not). The connection cannot be handed over, nor go on under crypto/tls without it:
// the caller closes it.
var ErrDataHeld = errors.New("tls: the peer's data came before the hand-over")

// errHandedOver is what Read and Write return once the connection is handed over.
var errHandedOver = errors.New("tls: the connection was handed over to an event loop")

// errProbing is what Read returns while Handoff asks crypto/tls for the data it holds: a
// temporary error, which crypto/tls returns without keeping it.
var errProbing probing

type probing struct{}

func (probing) Error() string   { return "tls: asking crypto/tls what it holds" }
func (probing) Timeout() bool   { return true }
func (probing) Temporary() bool { return true }

// Listener is a TLS listener, as tls.NewListener's, whose connections can be handed over
// after their handshake (see Handoff). Each connection's handshake runs with a clone
// of the configuration whose KeyLogWriter is the connection's own (and the configuration's
// KeyLogWriter, if it has one).
type Listener struct {
	net.Listener // the TCP listener
	config       *tls.Config
}

// NewListener returns a Listener accepting TCP connections from inner and serving TLS on
// them with config (which needs Certificates, GetCertificate or GetConfigForClient, as
// for tls.NewListener).
func NewListener(inner net.Listener, config *tls.Config) *Listener {
	own := config.Clone()
	user := config.GetConfigForClient
	own.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		base := config
		if user != nil {
			c, err := user(hello)
			if err != nil {
				return nil, err
			}
			if c != nil {
				base = c
			}
		}
		tc, ok := hello.Conn.(*Conn)
		if !ok {
			return base, nil
		}
		c := base.Clone()
		c.GetConfigForClient = nil
		tc.keyLogTo = base.KeyLogWriter
		c.KeyLogWriter = (*keyLog)(tc)
		return c, nil
	}
	return &Listener{Listener: inner, config: own}
}

// Accept waits for the next connection and returns it as a *tls.Conn over a *Conn.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(&Conn{Conn: c}, l.config), nil
}

// Conn is a server's connection under crypto/tls that follows the records each way, so
// that it can be handed over after the handshake. Reads give crypto/tls one record at a
// time (a header, then its body): it never holds bytes of a record it has not processed.
type Conn struct {
	net.Conn // the TCP connection

	keyLogTo io.Writer // the configuration's own KeyLogWriter

	mu           sync.Mutex // guards the secrets, written during the handshake
	suite        *suite
	clientSecret []byte
	serverSecret []byte

	in      tracker // read by crypto/tls (one goroutine at a time)
	out     tracker // written by crypto/tls (one goroutine at a time)
	handed  bool    // under mu
	probing bool    // under mu: Read returns errProbing
}

// tracker follows the records of one direction: where the current one is, and how many
// application data records went by under the first application traffic secret.
type tracker struct {
	hdr    [headerLen]byte
	hdrN   int
	body   []byte     // the current record's body: read so far (in), or written so far (out)
	bodyN  int        // how much of it went by
	bodyL  int        // its announced length
	app    *direction // the application traffic protection, once the secret is known
	seen   bool       // a record under it went by
	broken error      // why this direction cannot be followed any more
}

// atBoundary reports whether the direction is between records.
func (t *tracker) atBoundary() bool { return t.hdrN == 0 }

// consume takes the next bytes of the direction's stream, and calls record for each
// record they complete.
func (t *tracker) consume(b []byte, record func(hdr []byte, body []byte)) {
	for len(b) > 0 {
		if t.hdrN < headerLen {
			n := copy(t.hdr[t.hdrN:], b)
			t.hdrN += n
			b = b[n:]
			if t.hdrN < headerLen {
				return
			}
			t.bodyN, t.bodyL = 0, int(binary.BigEndian.Uint16(t.hdr[3:5]))
			if t.bodyL > maxAnyCiphertext {
				// crypto/tls refuses the record; its body is not kept for it.
				t.broken = errors.New("tls: a record longer than TLS allows")
			}
			if t.broken == nil {
				t.body = make([]byte, t.bodyL)
			}
		}
		n := min(len(b), t.bodyL-t.bodyN)
		if t.body != nil {
			copy(t.body[t.bodyN:], b[:n])
		}
		t.bodyN += n
		b = b[n:]
		if t.bodyN == t.bodyL {
			if t.body != nil {
				record(t.hdr[:], t.body)
			}
			t.hdrN, t.body = 0, nil
		}
	}
}

// Read reads at most to the end of the current record's header or body.
func (c *Conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	handed, probing := c.handed, c.probing
	c.mu.Unlock()
	switch {
	case handed:
		return 0, errHandedOver
	case probing:
		return 0, errProbing
	}
	want := headerLen - c.in.hdrN
	if c.in.hdrN == headerLen {
		want = c.in.bodyL - c.in.bodyN
	}
	n, err := c.Conn.Read(p[:min(len(p), want)])
	c.in.consume(p[:n], c.inRecord)
	return n, err
}

// Write writes records of crypto/tls, following them.
func (c *Conn) Write(p []byte) (int, error) {
	if c.isHanded() {
		return 0, errHandedOver
	}
	n, err := c.Conn.Write(p)
	c.out.consume(p[:n], c.outRecord)
	return n, err
}

func (c *Conn) isHanded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handed
}

// inRecord follows a record the client sent: it decrypts each one under the client's
// application traffic secret, to count them and to notice a key update (after which
// they cannot be followed without crypto/tls's state). Those under the handshake secrets
// (before) do not decrypt, and are not counted.
func (c *Conn) inRecord(hdr, body []byte) {
	t := &c.in
	if t.broken != nil || hdr[0] != typeApplicationData || !c.protect(t, false) {
		return
	}
	record := append(append(make([]byte, 0, headerLen+len(body)), hdr...), body...)
	typ, content, err := t.app.open(record)
	switch {
	case err != nil && t.seen:
		t.broken = err
	case err != nil: // under a handshake secret
	case typ == typeHandshake && len(content) > 0 && content[0] == handshakeKeyUpdate:
		t.broken = errors.New("tls: the client updated its keys before the hand-over")
	default:
		t.seen = true
	}
}

// outRecord follows a record crypto/tls sent: the first under the server's application
// traffic secret is found by decrypting each protected record until one decrypts (the
// server's Finished and the messages before it are under its handshake secret; crypto/tls
// logs the secret before it sends its Finished, so that one is tried too, and a hand-over
// finds the protection ready even if nothing went out under it), and from then on every
// record counts: crypto/tls updates its keys only when the client asks it to, which
// inRecord notices.
func (c *Conn) outRecord(hdr, body []byte) {
	t := &c.out
	switch {
	case t.broken != nil:
	case hdr[0] == typeHandshake && t.app == nil:
		c.serverHello(body)
	case hdr[0] != typeApplicationData:
	case t.seen:
		t.app.seq++
	case c.protect(t, true):
		record := append(append(make([]byte, 0, headerLen+len(body)), hdr...), body...)
		if _, _, err := t.app.open(record); err == nil {
			t.seen = true
		}
	}
}

// serverHello learns the cipher suite from the server's ServerHello.
func (c *Conn) serverHello(m []byte) {
	// type (2), length (3), legacy_version (2), random (32), legacy_session_id_echo, cipher_suite
	if len(m) < 4+2+32+1 || m[0] != 2 {
		return
	}
	i := 4 + 2 + 32
	i += 1 + int(m[i])
	if len(m) < i+2 {
		return
	}
	c.mu.Lock()
	c.suite = suiteByID(binary.BigEndian.Uint16(m[i:]))
	c.mu.Unlock()
}

// protect readies t's application traffic protection, once its secret is known, and
// reports whether it is ready.
func (c *Conn) protect(t *tracker, server bool) bool {
	if t.app != nil {
		return true
	}
	c.mu.Lock()
	s, secret := c.suite, c.clientSecret
	if server {
		secret = c.serverSecret
	}
	c.mu.Unlock()
	if s == nil || secret == nil {
		return false
	}
	d, err := newDirection(s, secret)
	if err != nil {
		t.broken = err
		return false
	}
	t.app = d
	return true
}

// keyLog is a Conn seen as its handshake's KeyLogWriter.
type keyLog Conn

// Write takes one line of the NSS key log format: "LABEL client_random secret".
func (k *keyLog) Write(line []byte) (int, error) {
	c := (*Conn)(k)
	if c.keyLogTo != nil {
		if _, err := c.keyLogTo.Write(line); err != nil {
			return 0, err
		}
	}
	f := bytes.Fields(line)
	if len(f) != 3 {
		return len(line), nil
	}
	secret, err := hex.DecodeString(string(f[2]))
	if err != nil {
		return len(line), nil
	}
	c.mu.Lock()
	switch string(f[0]) {
	case "CLIENT_TRAFFIC_SECRET_0":
		c.clientSecret = secret
	case "SERVER_TRAFFIC_SECRET_0":
		c.serverSecret = secret
	}
	c.mu.Unlock()
	return len(line), nil
}

// Handoff ends crypto/tls's part in the connection, whose TLS layer is tc, and returns
// its record layer and TCP connection: from now on the caller reads and writes records
// on the TCP connection with the Stream, and closes the TCP connection (not tc, which
// would send an alert). It fails with ErrNotHandedOver, leaving everything as it was,
// unless tc is a TLS 1.3 connection over c whose handshake is done, between records in
// both directions, whose records could all be followed; and with ErrDataHeld when
// crypto/tls holds data nobody read. Nothing may use tc meanwhile.
func Handoff(tc *tls.Conn) (*Stream, net.Conn, error) {
	c, ok := tc.NetConn().(*Conn)
	if !ok {
		return nil, nil, errors.Join(ErrNotHandedOver, errors.New("tls: not a connection of a tlsrecord.Listener"))
	}
	cs := tc.ConnectionState()
	var why error
	switch {
	case !cs.HandshakeComplete:
		why = errors.New("tls: the handshake is not done")
	case cs.Version != tls.VersionTLS13:
		why = errors.New("tls: not TLS 1.3")
	case c.in.broken != nil:
		why = c.in.broken
	case c.out.broken != nil:
		why = c.out.broken
	case !c.in.atBoundary() || !c.out.atBoundary():
		why = errors.New("tls: in the middle of a record")
	case c.in.app == nil || c.out.app == nil || c.in.app.suite.id != cs.CipherSuite:
		why = errors.New("tls: the traffic secrets are not known")
	}
	if why != nil {
		return nil, nil, errors.Join(ErrNotHandedOver, why)
	}
	// crypto/tls may hold the rest of a record whose start its reader took: it returns
	// that without reading, or the temporary errProbing, which it does not keep.
	c.mu.Lock()
	c.probing = true
	c.mu.Unlock()
	var one [1]byte
	n, _ := tc.Read(one[:])
	c.mu.Lock()
	c.probing = false
	c.handed = n == 0
	c.clientSecret, c.serverSecret = nil, nil // the Stream has what it needs
	c.mu.Unlock()
	if n > 0 {
		return nil, nil, ErrDataHeld
	}
	return &Stream{in: c.in.app, out: c.out.app}, c.Conn, nil
}
