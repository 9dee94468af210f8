package relay

import "strings"

// Kinds of pressure-relief servers, as they announce themselves to the sibling.
const (
	// ReliefExpansion servers take the newest entries, with short lives, as pressure
	// builds on the front ends.
	ReliefExpansion = "expansion"
	// ReliefAging servers keep entries the relay's table pushed out, expiring slowly.
	ReliefAging = "aging"
)

// ReliefName is the name a relief server of kind gives in its hello, with its stable
// identity id: the sibling spreads keys over servers by these names, so a server that
// restarts under the same id gets its keys back.
func ReliefName(kind, id string) string { return "relief/" + kind + "/" + id }

// ParseReliefName splits a hello name made by ReliefName; ok is false for other names.
func ParseReliefName(name string) (kind, id string, ok bool) {
	rest, found := strings.CutPrefix(name, "relief/")
	if !found {
		return "", "", false
	}
	kind, id, found = strings.Cut(rest, "/")
	if !found || (kind != ReliefExpansion && kind != ReliefAging) || id == "" {
		return "", "", false
	}
	return kind, id, true
}
