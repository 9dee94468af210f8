package gateway

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenSigner signs the JWTs the gateway gives backends for a session, with HS256 (a shared
// key) or ES256 (an ECDSA P-256 private key). The browser never sees them.
//
// A token names its session by the session's backend id (see BackendID), derived from the
// session id with a key derived from the signing key, so that neither the token nor the
// header a backend gets can be used as the login cookie. The gateway's own reference to
// the session travels sealed (AES-GCM under another derived key) for a hub behind a front
// gateway: with ES256 a backend, which holds only the public key, cannot open it; with
// HS256 backends share the gateway's key and are trusted as the gateway is.
type TokenSigner struct {
	method jwt.SigningMethod
	key    any // []byte or *ecdsa.PrivateKey
	verify any // []byte or *ecdsa.PublicKey
	issuer string
	idKey  []byte      // keys the backend ids
	seal   cipher.AEAD // seals the session reference
}

// Claims are what a session's JWT says.
type Claims struct {
	jwt.RegisteredClaims
	// Session is the session's backend id (see TokenSigner.BackendID): stable for the
	// session's life, and not its cookie.
	Session string `json:"sid"`
	// Ref is the gateway's sealed reference to the session; only the gateway opens it.
	Ref string `json:"ref,omitempty"`
	// Roles are the user's roles.
	Roles []string `json:"roles,omitempty"`
	// Anonymous marks an anonymous session.
	Anonymous bool `json:"anon,omitempty"`
}

// NewHS256Signer signs with a shared key of at least 32 bytes.
func NewHS256Signer(key []byte, issuer string) (*TokenSigner, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("gateway: HS256 key of %d bytes; at least 32 are needed", len(key))
	}
	return newSigner(&TokenSigner{method: jwt.SigningMethodHS256, key: key, verify: key, issuer: issuer}, key)
}

// NewES256Signer signs with the ECDSA P-256 private key in the PEM file at path.
func NewES256Signer(path, issuer string) (*TokenSigner, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gateway: ES256 key: %w", err)
	}
	k, err := jwt.ParseECPrivateKeyFromPEM(b)
	if err != nil {
		return nil, fmt.Errorf("gateway: ES256 key %s: %w", path, err)
	}
	if k.Curve.Params().Name != "P-256" {
		return nil, fmt.Errorf("gateway: ES256 key %s: curve %s, ES256 needs P-256", path, k.Curve.Params().Name)
	}
	secret, err := k.Bytes()
	if err != nil {
		return nil, fmt.Errorf("gateway: ES256 key %s: %w", path, err)
	}
	return newSigner(&TokenSigner{method: jwt.SigningMethodES256, key: k, verify: &k.PublicKey, issuer: issuer}, secret)
}

// newSigner derives s's backend-id and sealing keys from the signing key's secret.
func newSigner(s *TokenSigner, secret []byte) (*TokenSigner, error) {
	idKey, err := hkdf.Key(sha256.New, secret, nil, "global-sessions backend session id", 32)
	if err != nil {
		return nil, err
	}
	sealKey, err := hkdf.Key(sha256.New, secret, nil, "global-sessions session reference", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, err
	}
	if s.seal, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	s.idKey = idKey
	return s, nil
}

// BackendID is the id backends know a session by: a keyed hash of the session id (22
// characters), the same on every gateway with the same signing key, and useless as a
// cookie.
func (s *TokenSigner) BackendID(session string) string {
	m := hmac.New(sha256.New, s.idKey)
	m.Write([]byte(session))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// sealRef seals a session id for the token's ref claim.
func (s *TokenSigner) sealRef(session string) (string, error) {
	nonce := make([]byte, s.seal.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.seal.Seal(nonce, nonce, []byte(session), nil)), nil
}

// openRef opens a ref claim sealRef made.
func (s *TokenSigner) openRef(ref string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(ref)
	if err != nil || len(b) < s.seal.NonceSize() {
		return "", errors.New("gateway: token: malformed session reference")
	}
	n := s.seal.NonceSize()
	sid, err := s.seal.Open(nil, b[:n], b[n:], nil)
	if err != nil {
		return "", errors.New("gateway: token: a session reference this gateway did not seal")
	}
	return string(sid), nil
}

// Sign makes a JWT for id naming session (a session's backend id, see BackendID), valid
// until expiry.
func (s *TokenSigner) Sign(id Identity, session string, expiry time.Time) (string, error) {
	return s.sign(id, Claims{Session: session}, expiry)
}

// sign makes a JWT of c for id, valid until expiry.
func (s *TokenSigner) sign(id Identity, c Claims, expiry time.Time) (string, error) {
	now := time.Now()
	c.RegisteredClaims = jwt.RegisteredClaims{Subject: id.User, Issuer: s.issuer,
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(expiry)}
	c.Roles, c.Anonymous = id.Roles, id.Anonymous
	return jwt.NewWithClaims(s.method, c).SignedString(s.key)
}

// Verify checks a token this signer made (what a backend does with the gateway's key) and
// returns its claims.
func (s *TokenSigner) Verify(token string) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		if t.Method.Alg() != s.method.Alg() {
			return nil, fmt.Errorf("algorithm %s, want %s", t.Method.Alg(), s.method.Alg())
		}
		return s.verify, nil
	}, jwt.WithIssuer(s.issuer), jwt.WithExpirationRequired())
	if err != nil {
		return nil, fmt.Errorf("gateway: token: %w", err)
	}
	return &c, nil
}
