package gateway

import (
	"fmt"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenSigner signs the JWTs the gateway gives backends for a session, with HS256 (a shared
// key) or ES256 (an ECDSA P-256 private key). The browser never sees them.
type TokenSigner struct {
	method jwt.SigningMethod
	key    any // []byte or *ecdsa.PrivateKey
	verify any // []byte or *ecdsa.PublicKey
	issuer string
}

// Claims are what a session's JWT says.
type Claims struct {
	jwt.RegisteredClaims
	// Session is the gateway session the token belongs to.
	Session string `json:"sid"`
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
	return &TokenSigner{method: jwt.SigningMethodHS256, key: key, verify: key, issuer: issuer}, nil
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
	return &TokenSigner{method: jwt.SigningMethodES256, key: k, verify: &k.PublicKey, issuer: issuer}, nil
}

// Sign makes the JWT of a session, valid until expiry.
func (s *TokenSigner) Sign(id Identity, session string, expiry time.Time) (string, error) {
	now := time.Now()
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: id.User, Issuer: s.issuer,
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(expiry)},
		Session: session, Roles: id.Roles, Anonymous: id.Anonymous,
	}
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
