//go:build !linux

package sessioncache

// adviseHugePages is Linux's; elsewhere the section keeps the system's page size.
func adviseHugePages([]byte) {}

// hugeMappedBytes is 0 where the table does not ask for huge pages.
func hugeMappedBytes([]byte) (int64, error) { return 0, nil }
