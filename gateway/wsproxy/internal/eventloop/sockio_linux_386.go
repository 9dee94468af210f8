package eventloop

import "syscall"

// recvRaw and sendRaw read and write a non-blocking socket. Linux on 386 reaches recvfrom
// and sendto only through socketcall, so it uses read and write; a write to a reset
// connection then raises SIGPIPE, which Go ignores for descriptors other than stdout and
// stderr, and fails with EPIPE.
func recvRaw(fd int, b []byte) (int, error) { return rawIO(syscall.SYS_READ, fd, b, 0) }

func sendRaw(fd int, b []byte) (int, error) { return rawIO(syscall.SYS_WRITE, fd, b, 0) }
