//go:build !linux

package wakeup

import "errors"

// OneProcessor needs Linux, where it restricts this process to one processor, and its Go
// runtime to one logical processor, until release is called.
func OneProcessor() (cpu int, release func() error, err error) {
	return 0, nil, errors.New("wakeup: restricting a process to one processor needs Linux")
}
