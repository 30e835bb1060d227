package collab

import (
	"fmt"
	"slices"
	"strings"
)

// Access says which documents a client may read and write: the decision
// behind every request once authentication is on (DESIGN.md §8). web
// builds one per connection from the client's token and asks it before
// every read and write; the engine itself does not authenticate.
//
// The zero Access allows nothing. Unrestricted allows everything (the
// server without authentication).
type Access struct {
	// Subject is who the client is (a token's "sub"); "" without
	// authentication.
	Subject string
	// Grants are the documents the client may use. A document is
	// readable when any grant matches it, and writable when a grant with
	// Write matches it.
	Grants []Grant
	// Unrestricted allows every document, read and write, whatever the
	// grants say.
	Unrestricted bool
}

// Grant is one document pattern and what it allows.
type Grant struct {
	// Pattern is "collection/id" where each part may hold '*' wildcards
	// that match any run of characters ("notes/*", "*/*", "wiki/team-*").
	// The first '/' separates the parts, so an id may contain '/'. A
	// pattern without '/' is a collection pattern: "notes" is "notes/*".
	Pattern string
	// Write allows submits; without it the grant is read-only.
	Write bool
}

// Everyone is the Access of a server without authentication.
var Everyone = Access{Unrestricted: true}

// CanRead reports whether a may read key: fetch, subscribe, history,
// presence.
func (a Access) CanRead(key Key) bool {
	if a.Unrestricted {
		return true
	}
	for _, g := range a.Grants {
		if g.Matches(key) {
			return true
		}
	}
	return false
}

// CanWrite reports whether a may submit ops to key.
func (a Access) CanWrite(key Key) bool {
	if a.Unrestricted {
		return true
	}
	for _, g := range a.Grants {
		if g.Write && g.Matches(key) {
			return true
		}
	}
	return false
}

// Collections returns the collections a's grants name, each once, and
// true when each grant names one collection without a wildcard: then
// every document a may read is in one of them, and a listing of all may
// list those alone. It returns false for an unrestricted Access and for
// a grant such as "*/x" or "wiki-*/x".
func (a Access) Collections() ([]string, bool) {
	if a.Unrestricted {
		return nil, false
	}
	var out []string
	for _, g := range a.Grants {
		c, _ := g.parts()
		if strings.Contains(c, "*") {
			return nil, false
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, true
}

// CanReadCollection reports whether a may read some document of the
// collection (""for every collection), which is what a listing needs
// before it filters document by document.
func (a Access) CanReadCollection(collection string) bool {
	if a.Unrestricted {
		return true
	}
	for _, g := range a.Grants {
		cp, _ := g.parts()
		if collection == "" || globMatch(cp, collection) {
			return true
		}
	}
	return false
}

// Matches reports whether g's pattern matches key.
func (g Grant) Matches(key Key) bool {
	cp, ip := g.parts()
	return globMatch(cp, key.Collection) && globMatch(ip, key.ID)
}

func (g Grant) parts() (collection, id string) {
	c, i, ok := strings.Cut(g.Pattern, "/")
	if !ok {
		return c, "*"
	}
	return c, i
}

// CheckPattern reports whether p is a usable grant pattern: not empty,
// both parts non-empty.
func CheckPattern(p string) error {
	c, i, ok := strings.Cut(p, "/")
	if c == "" || (ok && i == "") {
		return fmt.Errorf("collab: document pattern %q: want collection/id, each part non-empty ('*' matches any run of characters)", p)
	}
	return nil
}

// globMatch matches s against pattern, where '*' matches any run of
// characters (including none) and everything else matches itself. It runs
// in O(len(pattern)*len(s)) at worst, with no recursion.
func globMatch(pattern, s string) bool {
	px, sx := 0, 0
	// Where to resume after a mismatch: the last '*' seen and the input
	// position it has consumed up to.
	star, mark := -1, 0
	for sx < len(s) {
		switch {
		case px < len(pattern) && pattern[px] == '*':
			star, mark = px, sx
			px++
		case px < len(pattern) && pattern[px] == s[sx]:
			px++
			sx++
		case star >= 0:
			mark++
			px, sx = star+1, mark
		default:
			return false
		}
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}
