// Package globalsession keeps login sessions, and other small, short-lived objects, close to
// the processes that need them.
//
// The module is a set of packages:
//
//   - [github.com/globalsession/globalsession/sessioncache]: a shared-memory LRU table that
//     the processes of one host create or attach to, with lock-free reads, recoverable
//     cross-process locks, per-entry expiry and an eviction callback.
//
// See README.md for the whole picture and how to run it.
package globalsession
