package eventloop

import "golang.org/x/sys/unix"

// recvRaw and sendRaw read and write a non-blocking socket. Linux on 386 reaches recvfrom
// and sendto only through socketcall, so it uses read and write; a write to a reset
// connection then raises SIGPIPE, which Go ignores for descriptors other than stdout and
// stderr, and fails with EPIPE.
func recvRaw(fd int, b []byte) (int, unix.Errno) { return rawIO(unix.SYS_READ, fd, b, 0) }

func sendRaw(fd int, b []byte) (int, unix.Errno) { return rawIO(unix.SYS_WRITE, fd, b, 0) }
