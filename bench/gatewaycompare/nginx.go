package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/globalsession/globalsession/bench/internal/benchpki"
	"github.com/globalsession/globalsession/bench/internal/procs"
)

// nginxPath finds nginx in PATH or /usr/sbin, with a clear message when it is missing.
func nginxPath() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", errors.New("nginx not found: install it with `apt-get install -y nginx` (Debian/Ubuntu)")
}

// nginxVersion is `nginx -v`'s output.
func nginxVersion() string {
	p, err := nginxPath()
	if err != nil {
		return "nginx missing"
	}
	out, _ := exec.Command(p, "-v").CombinedOutput()
	return strings.TrimSpace(string(out))
}

// nginxMaxIdle is how many idle connections the nginx of this program can hold: each takes
// two of its worker's connections.
const nginxMaxIdle = 30000

const nginxConf = `daemon off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 65536; }
http {
	access_log off;
	client_body_temp_path %[1]s/client_body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	map $http_upgrade $connection_upgrade { default upgrade; '' close; }
	server {
		listen %[2]s%[4]s;
		%[5]s
		location / {
			proxy_pass http://%[3]s;
			proxy_http_version 1.1;
			proxy_set_header Upgrade $http_upgrade;
			proxy_set_header Connection $connection_upgrade;
			proxy_read_timeout 3600s;
		}
	}
}
`

// startNginx starts nginx as a WebSocket reverse proxy to backendAddr on a free port, in a
// temp dir that is removed at cleanup; with certs, it listens over TLS 1.3.
func startNginx(backendAddr string, certs *benchpki.PKI) (*child, error) {
	path, err := nginxPath()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gatewaycompare-nginx-")
	if err != nil {
		return nil, err
	}
	procs.AtCleanup(func() { os.RemoveAll(dir) })
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	ssl, sslConf := "", ""
	if certs != nil {
		ssl = " ssl"
		sslConf = fmt.Sprintf("ssl_certificate %s; ssl_certificate_key %s; ssl_protocols TLSv1.3;", certs.CertFile, certs.KeyFile)
	}
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, addr, backendAddr, ssl, sslConf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(path, "-c", conf, "-p", dir+"/")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	procs.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, addr: addr}
	// SIGTERM is nginx's fast shutdown; its workers end with the master.
	procs.AtCleanup(func() { c.stop(syscall.SIGTERM) })
	if err := waitAccepting(addr); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return nil, fmt.Errorf("%w\nstderr: %s\nerror.log: %s", err, stderr.String(), log)
	}
	return c, nil
}

// freePort returns a loopback address that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// childPIDs returns the children of process pid (nginx's workers), from /proc.
func childPIDs(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}
