// Package gatewaytest is the common ground of the gateway packages' tests: sessions over a
// fresh table signed with a test key, a users file, and browsers that log in and keep their
// cookies. It is internal to the gateway and imported only by tests; it is not a test
// framework nor a fake of any gateway type.
package gatewaytest
