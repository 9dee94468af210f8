// Package faultproxy is a TCP proxy for tests that break a link: it forwards connections
// to a target until Cut closes every connection it carries and refuses new ones (it
// accepts and closes them), or Silence stops carrying bytes without closing anything, as
// a network that drops packets does, so that only the ends' own timeouts notice; Heal
// ends either. It is a test tool, not a production proxy.
package faultproxy

import (
	"errors"
	"net"
	"sync"
	"time"
)

// Proxy forwards connections from its own loopback address to a target.
type Proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	cut    bool
	silent bool
	closed bool
	resume chan struct{} // closed by Heal while silent
	conns  map[net.Conn]struct{}
}

// Start listens on 127.0.0.1 (a free port) and forwards to target.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, resume: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every connection the proxy carries and closes new ones at once, until Heal.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Silence stops carrying bytes, both ways and on new connections too, without closing
// anything, until Heal: what is sent meanwhile waits (in the proxy and in the sockets'
// buffers) and arrives after Heal, unless an end gave up on its connection first.
func (p *Proxy) Silence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.silent {
		p.silent = true
		p.resume = make(chan struct{})
	}
}

// Heal ends a Cut or a Silence.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	if p.silent {
		p.silent = false
		close(p.resume)
	}
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	if p.silent {
		p.silent = false
		close(p.resume)
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if !p.track(c) {
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// track registers a connection, or closes it when the proxy is cut or closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// gate waits while the proxy is silent; it reports false when the proxy closed meanwhile.
func (p *Proxy) gate() bool {
	for {
		p.mu.Lock()
		silent, resume, closed := p.silent, p.resume, p.closed
		p.mu.Unlock()
		if closed {
			return false
		}
		if !silent {
			return true
		}
		<-resume
	}
}

func (p *Proxy) serve(front net.Conn) {
	defer p.wg.Done()
	defer p.untrack(front)
	if !p.gate() {
		return
	}
	back, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !p.track(back) {
		return
	}
	defer p.untrack(back)
	done := make(chan struct{}, 2)
	go func() { p.copy(back, front); done <- struct{}{} }()
	go func() { p.copy(front, back); done <- struct{}{} }()
	<-done
	front.Close()
	back.Close()
	<-done
}

// copy carries bytes from src to dst, holding each chunk while the proxy is silent.
func (p *Proxy) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.gate() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
