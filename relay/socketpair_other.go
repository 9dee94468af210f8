//go:build !unix

package relay

import "errors"

// socketpair is not available here: a child sibling needs a Unix system.
func socketpair() ([2]int, error) {
	return [2]int{}, errors.New("relay: a child sibling needs a Unix socket pair")
}
