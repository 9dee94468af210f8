package tlsrecord

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"

	"golang.org/x/crypto/chacha20poly1305"
)

// Record types and sizes of TLS 1.3 (RFC 8446, section 5).
const (
	typeChangeCipherSpec = 20
	typeAlert            = 21
	typeHandshake        = 22
	typeApplicationData  = 23

	headerLen = 5
	// MaxPlaintext is the most data one record carries.
	MaxPlaintext = 1 << 14
	// maxCiphertext is the longest protected record body a peer may send.
	maxCiphertext = MaxPlaintext + 256
	// maxAnyCiphertext is the longest record body of any TLS version (1.2 allows more).
	maxAnyCiphertext = MaxPlaintext + 2048

	handshakeKeyUpdate = 24
	alertCloseNotify   = 0
)

// ErrRecord is the error of a record that cannot be accepted: not authentic, too long, of
// the wrong type, or a handshake message other than a key update.
var ErrRecord = errors.New("tls: bad record")

// suite is a TLS 1.3 cipher suite: its hash and its AEAD.
type suite struct {
	id     uint16
	hash   func() hash.Hash
	keyLen int
	aead   func(key []byte) (cipher.AEAD, error)
}

func aesGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

var suites = []suite{
	{tls.TLS_AES_128_GCM_SHA256, sha256.New, 16, aesGCM},
	{tls.TLS_AES_256_GCM_SHA384, sha512.New384, 32, aesGCM},
	{tls.TLS_CHACHA20_POLY1305_SHA256, sha256.New, chacha20poly1305.KeySize, chacha20poly1305.New},
}

func suiteByID(id uint16) *suite {
	for i := range suites {
		if suites[i].id == id {
			return &suites[i]
		}
	}
	return nil
}

// expandLabel is HKDF-Expand-Label of RFC 8446, section 7.1, with an empty context.
func (s *suite) expandLabel(secret []byte, label string, n int) ([]byte, error) {
	info := make([]byte, 0, 4+6+len(label))
	info = binary.BigEndian.AppendUint16(info, uint16(n))
	info = append(info, byte(6+len(label)))
	info = append(info, "tls13 "...)
	info = append(info, label...)
	info = append(info, 0)
	return hkdf.Expand(s.hash, secret, string(info), n)
}

// direction is the protection of the records one side sends: its traffic secret, the key
// and IV derived from it, and the sequence number of its next record.
type direction struct {
	suite  *suite
	secret []byte
	aead   cipher.AEAD
	iv     [12]byte
	seq    uint64
}

// newDirection returns the protection derived from a traffic secret, at sequence number 0.
func newDirection(s *suite, secret []byte) (*direction, error) {
	d := &direction{suite: s}
	if err := d.setSecret(secret); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *direction) setSecret(secret []byte) error {
	if len(secret) != d.suite.hash().Size() {
		return fmt.Errorf("tls: a traffic secret of %d bytes for a suite whose hash has %d", len(secret), d.suite.hash().Size())
	}
	key, err := d.suite.expandLabel(secret, "key", d.suite.keyLen)
	if err != nil {
		return err
	}
	iv, err := d.suite.expandLabel(secret, "iv", 12)
	if err != nil {
		return err
	}
	aead, err := d.suite.aead(key)
	if err != nil {
		return err
	}
	d.secret, d.aead, d.seq = secret, aead, 0
	copy(d.iv[:], iv)
	return nil
}

// update moves to the next traffic secret (a key update, RFC 8446 section 7.2).
func (d *direction) update() error {
	next, err := d.suite.expandLabel(d.secret, "traffic upd", len(d.secret))
	if err != nil {
		return err
	}
	return d.setSecret(next)
}

func (d *direction) nonce() [12]byte {
	n := d.iv
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], d.seq)
	for i := range s {
		n[4+i] ^= s[i]
	}
	return n
}

// open authenticates and decrypts record (header and body) in place, and returns its inner
// content type and content. On failure the record is garbage and the sequence number
// unchanged.
func (d *direction) open(record []byte) (byte, []byte, error) {
	nonce := d.nonce()
	plain, err := d.aead.Open(record[headerLen:headerLen], nonce[:], record[headerLen:], record[:headerLen])
	if err != nil {
		return 0, nil, fmt.Errorf("%w: not authentic (record %d)", ErrRecord, d.seq)
	}
	d.seq++
	// The content type is the last byte that is not zero padding.
	i := len(plain) - 1
	for i >= 0 && plain[i] == 0 {
		i--
	}
	if i < 0 {
		return 0, nil, fmt.Errorf("%w: a record of padding only", ErrRecord)
	}
	return plain[i], plain[:i], nil
}

// seal appends to dst the records that carry content of type typ.
func (d *direction) seal(dst []byte, typ byte, content []byte) []byte {
	for first := true; first || len(content) > 0; first = false {
		chunk := content[:min(len(content), MaxPlaintext)]
		content = content[len(chunk):]
		n := len(chunk) + 1 + d.aead.Overhead()
		dst = slices.Grow(dst, headerLen+n) // room for the tag: the AEAD seals in place
		start := len(dst)
		dst = append(dst, typeApplicationData, 3, 3, byte(n>>8), byte(n))
		dst = append(dst, chunk...)
		dst = append(dst, typ)
		nonce := d.nonce()
		body := dst[start+headerLen:]
		d.aead.Seal(body[:0], nonce[:], body, dst[start:start+headerLen])
		dst = dst[:start+headerLen+n]
		d.seq++
	}
	return dst
}

// Stream is the record layer of an established TLS 1.3 connection: the protection of what
// the peer sends (in) and of what is sent to it (out). It is not safe for concurrent use.
type Stream struct {
	in, out   *direction
	held      []byte // the start of a record cut by the end of what Open was given
	answer    bool   // the peer asked for a key update: ours goes before the next record
	ask       bool   // our next key update asks the peer for one (tests)
	ended     error  // what ended the peer's records: io.EOF (close_notify) or a bad record
	closeSent bool
}

// Open decrypts the records in b and returns the application data they carry. It works in
// place: b is overwritten, and the data returned lies in b or in a buffer of its own, and
// is not touched again by the Stream. The start of a record cut by the end of b is kept for
// the next call. It returns io.EOF once the peer sent close_notify, and an error wrapping
// ErrRecord for a record it cannot accept (after either, what the peer sends is ignored);
// the data before that is returned with the error.
func (s *Stream) Open(b []byte) ([]byte, error) {
	if s.ended != nil {
		return nil, s.ended
	}
	if len(s.held) > 0 {
		// The held record grows until it is whole (amortized: a peer sending a byte at a
		// time costs no copy of the record per byte), and is opened with what follows it.
		s.held = append(s.held, b...)
		if !wholeOrBad(s.held) {
			return nil, nil
		}
		b, s.held = s.held, nil
	}
	data := b[:0] // the records' data, moved down over what was decrypted
	for len(b) >= headerLen {
		n := int(binary.BigEndian.Uint16(b[3:5]))
		if b[0] != typeApplicationData || n > maxCiphertext {
			s.ended = fmt.Errorf("%w: type %d, %d bytes", ErrRecord, b[0], n)
			return data, s.ended
		}
		if len(b) < headerLen+n {
			break
		}
		typ, content, err := s.in.open(b[:headerLen+n])
		b = b[headerLen+n:]
		if err != nil {
			s.ended = err
			return data, err
		}
		switch typ {
		case typeApplicationData:
			data = append(data, content...) // copy moves it down: data never passes content
		case typeAlert:
			if len(content) == 2 && content[1] == alertCloseNotify {
				s.ended = io.EOF
			} else {
				s.ended = fmt.Errorf("%w: the peer sent alert %v", ErrRecord, content)
			}
			return data, s.ended
		case typeHandshake:
			if err := s.handshake(content); err != nil {
				s.ended = err
				return data, err
			}
		default:
			s.ended = fmt.Errorf("%w: inner content type %d", ErrRecord, typ)
			return data, s.ended
		}
	}
	if len(b) > 0 {
		s.held = append([]byte(nil), b...)
	}
	return data, nil
}

// wholeOrBad reports whether b starts with a whole record, or with a header Open refuses.
func wholeOrBad(b []byte) bool {
	if len(b) < headerLen {
		return false
	}
	n := int(binary.BigEndian.Uint16(b[3:5]))
	return b[0] != typeApplicationData || n > maxCiphertext || len(b) >= headerLen+n
}

// handshake takes a handshake message the peer sent after the handshake: a key update,
// or nothing.
func (s *Stream) handshake(m []byte) error {
	if len(m) != 5 || m[0] != handshakeKeyUpdate || m[1] != 0 || m[2] != 0 || m[3] != 1 || m[4] > 1 {
		return fmt.Errorf("%w: a handshake message after the handshake (type %d)", ErrRecord, m[0])
	}
	if err := s.in.update(); err != nil {
		return err
	}
	if m[4] == 1 {
		s.answer = true
	}
	return nil
}

// keyUpdateAfter is how many records are sealed under one key before Seal updates it: RFC
// 8446 (section 5.5) bounds AES-GCM to 2^24.5 full-size records per key.
const keyUpdateAfter = 1 << 24

// Seal appends to dst the records that carry data to the peer (with a key update of ours
// first, if the peer asked for one or the key has sealed keyUpdateAfter records). With empty data it appends nothing but that update.
func (s *Stream) Seal(dst, data []byte) []byte {
	if s.answer || s.ask || s.out.seq >= keyUpdateAfter {
		var request byte
		if s.ask {
			request = 1
		}
		s.answer, s.ask = false, false
		dst = s.out.seal(dst, typeHandshake, []byte{handshakeKeyUpdate, 0, 0, 1, request})
		if err := s.out.update(); err != nil {
			panic(err) // the secret's length was checked when it was set
		}
	}
	if len(data) == 0 {
		return dst
	}
	return s.out.seal(dst, typeApplicationData, data)
}

// UpdateOwed reports whether the peer asked for a key update that Seal has not sent yet.
func (s *Stream) UpdateOwed() bool { return s.answer }

// SealCloseNotify appends to dst the close_notify alert, once: it reports false (and
// appends nothing) when it was appended before.
func (s *Stream) SealCloseNotify(dst []byte) ([]byte, bool) {
	if s.closeSent {
		return dst, false
	}
	s.closeSent = true
	dst = s.Seal(dst, nil)
	return s.out.seal(dst, typeAlert, []byte{1, alertCloseNotify}), true
}
