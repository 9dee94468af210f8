package gateway

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// FuzzParseUsers feeds arbitrary users files to the parser: it never panics, a failure
// names the file and the line, and every user it accepts has a name and a bcrypt hash.
func FuzzParseUsers(f *testing.F) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("# users\nalice:" + string(hash) + ":admin,editor\n\nbob:" + string(hash) + "\n")
	f.Add("alice\n")
	f.Add(":" + string(hash))
	f.Add("carol:$2a$99$notahash:x")
	f.Fuzz(func(t *testing.T, text string) {
		users, err := parseUsers(strings.NewReader(text), "users.txt")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "gateway: users file users.txt") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for name, u := range users {
			if name == "" {
				t.Fatal("a user without a name was accepted")
			}
			if _, err := bcrypt.Cost(u.hash); err != nil {
				t.Fatalf("user %q accepted with a hash bcrypt refuses: %v", name, err)
			}
		}
	})
}
