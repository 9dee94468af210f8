package sessioncache

import (
	"errors"
	"fmt"
)

// Sentinel errors returned by the table. Test for them with errors.Is.
var (
	// ErrNotFound means the key is not in the table, or its entry has expired.
	ErrNotFound = errors.New("sessioncache: not found")
	// ErrValueTooLarge means key plus value do not fit in one record (Config.RecordSize).
	ErrValueTooLarge = errors.New("sessioncache: value too large for record")
	// ErrKeyTooLarge means the key is longer than Config.MaxKeySize.
	ErrKeyTooLarge = errors.New("sessioncache: key too large")
	// ErrEmptyKey means the key has no bytes; every entry needs a key.
	ErrEmptyKey = errors.New("sessioncache: empty key")
	// ErrClosed means the table (or manager) has been closed.
	ErrClosed = errors.New("sessioncache: closed")
	// ErrLayoutMismatch means a section exists but has another shape than the config asks for.
	// The concrete error is a *LayoutError naming the field and both values.
	ErrLayoutMismatch = errors.New("sessioncache: layout mismatch")
	// ErrNotTable means the file is not a session table: missing, truncated or garbage.
	ErrNotTable = errors.New("sessioncache: not a session table")
	// ErrCorrupt means Verify found a broken invariant, or a lookup found a structure that
	// could not have been left by any sequence of writes (memory corrupted from outside).
	ErrCorrupt = errors.New("sessioncache: table corrupt")
	// ErrInvalidConfig means a Config field is out of range. The message names the field.
	ErrInvalidConfig = errors.New("sessioncache: invalid config")
	// ErrUnsupported means shared-memory tables are not available on this platform.
	ErrUnsupported = errors.New("sessioncache: shared-memory table requires Linux")
)

// LayoutError reports a section whose header disagrees with the config that opened it,
// or a header that disagrees with itself. It matches ErrLayoutMismatch with errors.Is.
type LayoutError struct {
	Path    string // the section file
	Field   string // the config name of the field that differs, e.g. "record_size"
	Section any    // the value found in the section's header
	Config  any    // the value the config asks for
}

func (e *LayoutError) Error() string {
	return fmt.Sprintf("sessioncache: table %s: %s is %v in the section but %v in the config",
		e.Path, e.Field, e.Section, e.Config)
}

// Is reports whether target is ErrLayoutMismatch.
func (e *LayoutError) Is(target error) bool { return target == ErrLayoutMismatch }

func configError(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
}
