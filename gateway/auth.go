package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/globalsession/globalsession/gateway/internal/web"
)

// ErrBadCredentials means a login's user name or password is wrong. It does not say which.
var ErrBadCredentials = errors.New("gateway: bad credentials")

// Identity is who a session belongs to.
type Identity struct {
	// User is the stable user name (the JWT's subject).
	User string `json:"user"`
	// Roles are what the authenticator says the user may do.
	Roles []string `json:"roles,omitempty"`
	// Anonymous marks a session made without credentials.
	Anonymous bool `json:"anonymous,omitempty"`
}

// Authenticator checks a login request and says who it is. Add SSO or OIDC by
// implementing it.
type Authenticator interface {
	Authenticate(ctx context.Context, r *http.Request) (Identity, error)
}

// AuthenticatorFunc adapts a function to an Authenticator.
type AuthenticatorFunc func(ctx context.Context, r *http.Request) (Identity, error)

// Authenticate implements Authenticator.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, r *http.Request) (Identity, error) {
	return f(ctx, r)
}

// Anonymous logs anyone in as a fresh anonymous user.
type Anonymous struct{}

// Authenticate implements Authenticator.
func (Anonymous) Authenticate(context.Context, *http.Request) (Identity, error) {
	id, err := web.RandomID(12)
	if err != nil {
		return Identity{}, err
	}
	return Identity{User: "anonymous-" + id, Anonymous: true}, nil
}

// UsersFile checks the "user" and "password" form values of a login against a file of
// bcrypt hashes, one "user:hash[:role,role]" per line (# starts a comment). The file is
// read again when it changes.
type UsersFile struct {
	path    string
	mu      sync.Mutex
	users   map[string]fileUser
	stamp   string
	checked time.Time // when Exists last looked at the file
}

type fileUser struct {
	hash  []byte
	roles []string
}

// NewUsersFile reads the users file at path.
func NewUsersFile(path string) (*UsersFile, error) {
	u := &UsersFile{path: path}
	if err := u.load(); err != nil {
		return nil, err
	}
	return u, nil
}

func (u *UsersFile) load() error {
	fi, err := os.Stat(u.path)
	if err != nil {
		return fmt.Errorf("gateway: users file: %w", err)
	}
	stamp := fmt.Sprint(fi.ModTime().UnixNano(), fi.Size())
	u.mu.Lock()
	defer u.mu.Unlock()
	if stamp == u.stamp {
		return nil
	}
	f, err := os.Open(u.path)
	if err != nil {
		return fmt.Errorf("gateway: users file: %w", err)
	}
	defer f.Close()
	users, err := parseUsers(f, u.path)
	if err != nil {
		return err
	}
	u.users, u.stamp = users, stamp
	return nil
}

// Exists implements AccountChecker: whether user has a line in the file (read again when
// it changed, at most once a second).
func (u *UsersFile) Exists(_ context.Context, user string) (bool, error) {
	u.mu.Lock()
	fresh := time.Since(u.checked) < time.Second
	u.mu.Unlock()
	if !fresh {
		if err := u.load(); err != nil {
			return false, err
		}
		u.mu.Lock()
		u.checked = time.Now()
		u.mu.Unlock()
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.users[user]
	return ok, nil
}

// AccountChecker says whether a user still exists, so that removing a user ends that
// user's sessions (see SessionsConfig.Accounts). UsersFile is one.
type AccountChecker interface {
	Exists(ctx context.Context, user string) (bool, error)
}

var _ AccountChecker = (*UsersFile)(nil)

// parseUsers reads a users file: one user:bcrypt-hash[:role,role...] per line; blank lines
// and lines starting with # are skipped. Errors name path and the line.
func parseUsers(r io.Reader, path string) (map[string]fileUser, error) {
	users := map[string]fileUser{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) < 2 || parts[0] == "" {
			return nil, fmt.Errorf("gateway: users file %s line %d: want user:bcrypt-hash[:roles]", path, n)
		}
		if _, err := bcrypt.Cost([]byte(parts[1])); err != nil {
			return nil, fmt.Errorf("gateway: users file %s line %d: user %q: not a bcrypt hash: %w", path, n, parts[0], err)
		}
		fu := fileUser{hash: []byte(parts[1])}
		if len(parts) == 3 && parts[2] != "" {
			fu.roles = strings.Split(parts[2], ",")
		}
		users[parts[0]] = fu
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("gateway: users file %s: %w", path, err)
	}
	return users, nil
}

// dummyHash makes a check for an unknown user cost what one for a known user does, so the
// time taken does not tell which user names exist.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("not a password"), bcrypt.DefaultCost)

// Authenticate implements Authenticator.
func (u *UsersFile) Authenticate(_ context.Context, r *http.Request) (Identity, error) {
	if err := u.load(); err != nil {
		return Identity{}, err
	}
	user, password := r.FormValue("user"), r.FormValue("password")
	u.mu.Lock()
	fu, ok := u.users[user]
	u.mu.Unlock()
	hash := fu.hash
	if !ok {
		hash = dummyHash
	}
	if err := bcrypt.CompareHashAndPassword(hash, []byte(password)); err != nil || !ok {
		return Identity{}, ErrBadCredentials
	}
	return Identity{User: user, Roles: fu.roles}, nil
}
