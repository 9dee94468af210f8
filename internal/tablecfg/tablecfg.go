// Package tablecfg turns a config file's cache block into a sessioncache.Config: the one
// place where token_path and seed name a shared-memory section, so the binary's roles and
// a front end's loader (relay/clientconfig) name the same sections.
package tablecfg

import (
	"fmt"
	"path/filepath"

	"github.com/cespare/xxhash/v2"

	"github.com/globalsession/globalsession/internal/config"
	"github.com/globalsession/globalsession/sessioncache"
)

// Of turns a cache block of f into a table config; create is what am_initializer means
// when the block does not say. A token_path names the section as ftok names a System V
// segment (see SectionPath); a path names the file itself.
func Of(f *config.File, c *config.Cache, create bool) sessioncache.Config {
	if c == nil {
		return sessioncache.Config{Create: create}
	}
	if c.AmInitializer != nil {
		create = *c.AmInitializer
	}
	tc := sessioncache.Config{Path: f.Resolve(c.Path), Create: create, Replace: c.Replace, Prefault: c.Prefault,
		ElementCount: c.ElCount, RecordSize: c.RecordSize, MaxKeySize: c.MaxKeySize, Seed: c.Seed}
	if tc.Path == "" && c.TokenPath != "" {
		tc.Path = SectionPath(f.Resolve(c.TokenPath), c.Seed)
	}
	return tc
}

// SectionPath names the shared-memory section for a token path and seed, as ftok does for
// System V segments: every process giving the same token and seed gets the same section.
func SectionPath(token string, seed uint64) string {
	return filepath.Join(sessioncache.DefaultDir, fmt.Sprintf("globalsession-%016x-%d.table", xxhash.Sum64String(token), seed))
}
