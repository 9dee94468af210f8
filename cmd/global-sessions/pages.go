package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// fileSystemLine describes the file system that holds the table at path, and what it means
// for the table's page size: a tmpfs gives huge pages to tables when mounted with
// huge=advise, within_size or always (see docs/operations.md, "Huge pages").
func fileSystemLine(path string) string {
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "file system: unknown (" + err.Error() + ")"
	}
	abs, err := filepath.Abs(path)
	if err == nil {
		if resolved, rerr := filepath.EvalSymlinks(abs); rerr == nil {
			abs = resolved
		}
	}
	m, ok := mountOf(info, abs)
	if !ok {
		return "file system: unknown (no mount holds " + abs + ")"
	}
	line := fmt.Sprintf("file system: %s at %s", m.fsType, m.point)
	if m.fsType != "tmpfs" {
		return line + " (not a tmpfs: the table may be written back to a disk)"
	}
	switch huge := m.option("huge"); huge {
	case "advise", "within_size", "always":
		return line + ", huge=" + huge + " (huge pages for the table)"
	case "":
		return line + ", no huge= option (4 KiB pages; a large table is faster on huge pages: docs/operations.md)"
	default:
		return line + ", huge=" + huge + " (4 KiB pages; a large table is faster on huge pages: docs/operations.md)"
	}
}

// mount is one line of /proc/self/mountinfo.
type mount struct {
	point   string
	fsType  string
	options string // the super block's options: "rw,size=...,huge=never"
}

// option returns the value of option name ("huge" in "rw,huge=never"), or "".
func (m mount) option(name string) string {
	for _, o := range strings.Split(m.options, ",") {
		if v, ok := strings.CutPrefix(o, name+"="); ok {
			return v
		}
	}
	return ""
}

// mountOf finds in mountinfo the mount that holds path (absolute): the last listed of
// those with the longest mount point that contains it, as the kernel resolves them.
func mountOf(mountinfo []byte, path string) (mount, bool) {
	var best mount
	found := false
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		// "36 35 98:0 /root /mnt/point rw,noatime shared:1 - tmpfs tmpfs rw,huge=never"
		head, tail, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		hf, tf := strings.Fields(head), strings.Fields(tail)
		if len(hf) < 5 || len(tf) < 3 {
			continue
		}
		point := unescapeMount(hf[4])
		if !holds(point, path) || found && len(point) < len(best.point) {
			continue
		}
		best, found = mount{point: point, fsType: tf[0], options: tf[2]}, true
	}
	return best, found
}

// holds reports whether the directory point contains path.
func holds(point, path string) bool {
	return point == "/" || path == point || strings.HasPrefix(path, point+"/")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, \011, \012, \134).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }
