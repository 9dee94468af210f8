//go:build !linux

package sessioncache

import "errors"

// populateWrite is Linux's; elsewhere the section is touched page by page.
func populateWrite([]byte) error { return errors.New("no MADV_POPULATE_WRITE here") }
