package sessioncache

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseHugePages asks Linux to back mem with huge pages where the file system allows it.
// Where it does not, the call fails or changes nothing; either way the table works on
// 4 KiB pages, so the result is ignored.
func adviseHugePages(mem []byte) { _ = unix.Madvise(mem, unix.MADV_HUGEPAGE) }

// hugeMappedBytes reads from /proc/self/smaps how many bytes of the mapping that starts at
// mem are mapped with huge pages.
func hugeMappedBytes(mem []byte) (int64, error) {
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("sessioncache: huge pages: %w", err)
	}
	return smapsHugeBytes(data, uintptr(unsafe.Pointer(&mem[0])))
}

// smapsHugeBytes sums the ShmemPmdMapped and FilePmdMapped fields of the mapping in smaps
// that starts at address start.
func smapsHugeBytes(smaps []byte, start uintptr) (int64, error) {
	prefix := []byte(strconv.FormatUint(uint64(start), 16) + "-")
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	in, found := false, false
	var total int64
	for sc.Scan() {
		line := sc.Bytes()
		if isMappingLine(line) {
			if in {
				break
			}
			in = bytes.HasPrefix(line, prefix)
			found = found || in
			continue
		}
		if !in {
			continue
		}
		for _, field := range [...]string{"ShmemPmdMapped:", "FilePmdMapped:"} {
			if rest, ok := bytes.CutPrefix(line, []byte(field)); ok {
				kb, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte(" kB"))), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("sessioncache: huge pages: smaps line %q: %w", line, err)
				}
				total += kb << 10
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("sessioncache: huge pages: reading smaps: %w", err)
	}
	if !found {
		return 0, fmt.Errorf("sessioncache: huge pages: no mapping at %#x in smaps", start)
	}
	return total, nil
}

// isMappingLine reports whether an smaps line starts a mapping ("start-end perms ..."): its
// first field is two hexadecimal numbers joined by a dash, where a field line starts with a
// name and a colon.
func isMappingLine(line []byte) bool {
	field, _, _ := bytes.Cut(line, []byte(" "))
	lo, hi, ok := bytes.Cut(field, []byte("-"))
	return ok && isHex(lo) && isHex(hi)
}

func isHex(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
