package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// What gateways and workers exchange on the relay (see Broker and Worker):
//
//	request (gateway to a worker, on QueuePath(queue); key: the client's id)
//	  version 1 | flags 1 (0x01 binary, 0x02 a file request: data is the name) | user u16+bytes | group u16+bytes |
//	  token u16+bytes | id u16+bytes | data (the rest)
//	replies (the worker's answer to a request)
//	  version 1 | count u16 | count times: kind 1 | flags 1 | target u16+bytes | data u32+bytes
//	push (on GroupPath(group), or on InboxPath(instance) with key: the client's id)
//	  version 1 | flags 1 | data (the rest)
//
// Integers are big-endian.

const envelopeVersion = 2

// Relay paths of the broker mode.
const (
	// GatewaysPath is the queue gateway instances join, labelled with their address, so
	// that discovery (MemberProvider) lists the live ones.
	GatewaysPath = "gw.gateways"
	queuePrefix  = "gw.queue/"
	groupPrefix  = "gw.group/"
	inboxPrefix  = "gw.inbox/"
)

// QueuePath is the relay path of a worker queue.
func QueuePath(queue string) string { return queuePrefix + queue }

// GroupPath is the relay path on which replies to a group (a workbook) travel.
func GroupPath(group string) string { return groupPrefix + group }

// InboxPath is the relay path on which replies to one client of a gateway instance travel.
func InboxPath(instance string) string { return inboxPrefix + instance }

// ErrBadEnvelope means bytes from the relay are not a valid request, reply list or push.
var ErrBadEnvelope = errors.New("gateway: malformed broker envelope")

const flagBinary = 0x01

func appendString16(b []byte, s string) ([]byte, error) {
	if len(s) > 0xffff {
		return b, fmt.Errorf("%w: a field of %d bytes (the limit is 65535)", ErrBadEnvelope, len(s))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...), nil
}

// envelopeReader takes fields off an envelope, remembering the first error.
type envelopeReader struct {
	b   []byte
	err error
}

func (r *envelopeReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrBadEnvelope, what)
	}
}

func (r *envelopeReader) byte1(what string) byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail(what + " missing")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *envelopeReader) bytesN(n int, what string) []byte {
	if r.err != nil || len(r.b) < n {
		r.fail(fmt.Sprintf("%s: %d bytes announced, %d left", what, n, len(r.b)))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *envelopeReader) string16(what string) string {
	n := r.bytesN(2, what+" length")
	if n == nil {
		return ""
	}
	return string(r.bytesN(int(binary.BigEndian.Uint16(n)), what))
}

// flags takes the flags byte, refusing bits other than known.
func (r *envelopeReader) flags(what string, known byte) byte {
	f := r.byte1(what)
	if r.err == nil && f&^known != 0 {
		r.fail(fmt.Sprintf("%s %#x has unknown bits", what, f))
	}
	return f
}

func (r *envelopeReader) version() {
	if v := r.byte1("version"); r.err == nil && v != envelopeVersion {
		r.fail(fmt.Sprintf("version %d (this side speaks %d)", v, envelopeVersion))
	}
}

// encodeRequest encodes a client's message for a worker.
func encodeRequest(m *Message) ([]byte, error) {
	b := make([]byte, 0, 10+len(m.User)+len(m.Group)+len(m.Token)+len(m.ID)+len(m.Data))
	b = append(b, envelopeVersion, flagsOf(m.Binary))
	var err error
	for _, s := range []string{m.User, m.Group, m.Token, m.ID} {
		if b, err = appendString16(b, s); err != nil {
			return nil, err
		}
	}
	return append(b, m.Data...), nil
}

// decodeRequest decodes a request for a worker; client is the request's key.
func decodeRequest(client string, b []byte) (*Message, error) {
	r := envelopeReader{b: b}
	r.version()
	flags := r.flags("flags", flagBinary|flagFile)
	m := &Message{Client: client, Binary: flags&flagBinary != 0, file: flags&flagFile != 0}
	m.User = r.string16("user")
	m.Group = r.string16("group")
	m.Token = r.string16("token")
	m.ID = r.string16("id")
	if r.err != nil {
		return nil, r.err
	}
	m.Data = r.b
	return m, nil
}

// encodeReplies encodes a worker's replies to a request.
func encodeReplies(replies []Reply) ([]byte, error) {
	if len(replies) > 0xffff {
		return nil, fmt.Errorf("%w: %d replies to one message (the limit is 65535)", ErrBadEnvelope, len(replies))
	}
	n := 3
	for _, rp := range replies {
		n += 8 + len(rp.Target) + len(rp.Data)
	}
	b := make([]byte, 0, n)
	b = append(b, envelopeVersion)
	b = binary.BigEndian.AppendUint16(b, uint16(len(replies)))
	var err error
	for _, rp := range replies {
		if err := rp.check(); err != nil {
			return nil, err
		}
		b = append(b, byte(rp.Kind), flagsOf(rp.Binary))
		if b, err = appendString16(b, rp.Target); err != nil {
			return nil, err
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(rp.Data)))
		b = append(b, rp.Data...)
	}
	return b, nil
}

// decodeReplies decodes a worker's replies.
func decodeReplies(b []byte) ([]Reply, error) {
	r := envelopeReader{b: b}
	r.version()
	cnt := r.bytesN(2, "reply count")
	if r.err != nil {
		return nil, r.err
	}
	n := int(binary.BigEndian.Uint16(cnt))
	out := make([]Reply, 0, min(n, len(r.b)/8+1))
	for i := 0; i < n && r.err == nil; i++ {
		rp := Reply{Kind: ReplyKind(r.byte1("reply kind"))}
		rp.Binary = r.flags("reply flags", flagBinary)&flagBinary != 0
		rp.Target = r.string16("reply target")
		l := r.bytesN(4, "reply length")
		if r.err != nil {
			break
		}
		rp.Data = r.bytesN(int(binary.BigEndian.Uint32(l)), "reply data")
		if r.err == nil {
			if err := rp.check(); err != nil {
				return nil, err
			}
		}
		out = append(out, rp)
	}
	if r.err == nil && len(r.b) > 0 {
		r.fail(fmt.Sprintf("%d bytes after the last reply", len(r.b)))
	}
	if r.err != nil {
		return nil, r.err
	}
	return out, nil
}

// encodePush encodes a message pushed to a group or a client.
func encodePush(binaryMsg bool, data []byte) []byte {
	b := make([]byte, 0, 2+len(data))
	b = append(b, envelopeVersion, flagsOf(binaryMsg))
	return append(b, data...)
}

// decodePush decodes a pushed message.
func decodePush(b []byte) (binaryMsg bool, data []byte, err error) {
	r := envelopeReader{b: b}
	r.version()
	flags := r.flags("flags", flagBinary)
	if r.err != nil {
		return false, nil, r.err
	}
	return flags&flagBinary != 0, r.b, nil
}

func flagsOf(binaryMsg bool) byte {
	if binaryMsg {
		return flagBinary
	}
	return 0
}

// instanceOf returns the gateway instance of a client id ("<instance>/<n>").
func instanceOf(client string) (string, bool) {
	i := strings.LastIndexByte(client, '/')
	if i <= 0 {
		return "", false
	}
	return client[:i], true
}
