package collab_test

import (
	"testing"

	"github.com/coedit/coedit/collab"
)

func TestAccessGrants(t *testing.T) {
	notes := collab.Key{Collection: "notes", ID: "shopping"}
	wiki := collab.Key{Collection: "wiki", ID: "team/plan"}
	a := collab.Access{Subject: "alice", Grants: []collab.Grant{
		{Pattern: "notes/*", Write: true},
		{Pattern: "wiki/team/*"},
	}}
	tests := []struct {
		key         collab.Key
		read, write bool
	}{
		{notes, true, true},
		{wiki, true, false},
		{collab.Key{Collection: "wiki", ID: "other"}, false, false},
		{collab.Key{Collection: "notesx", ID: "a"}, false, false},
		{collab.Key{Collection: "note", ID: "a"}, false, false},
	}
	for _, tt := range tests {
		if got := a.CanRead(tt.key); got != tt.read {
			t.Errorf("CanRead(%v) = %v, want %v", tt.key, got, tt.read)
		}
		if got := a.CanWrite(tt.key); got != tt.write {
			t.Errorf("CanWrite(%v) = %v, want %v", tt.key, got, tt.write)
		}
	}
	var none collab.Access
	if none.CanRead(notes) || none.CanWrite(notes) || none.CanReadCollection("") {
		t.Error("the zero Access allows something")
	}
	if !collab.Everyone.CanWrite(wiki) {
		t.Error("Everyone cannot write")
	}
	if !a.CanReadCollection("wiki") || a.CanReadCollection("other") || !a.CanReadCollection("") {
		t.Error("CanReadCollection disagrees with the grants")
	}
}

func TestGrantMatches(t *testing.T) {
	tests := []struct {
		pattern string
		key     collab.Key
		want    bool
	}{
		{"*/*", collab.Key{Collection: "a", ID: "b/c"}, true},
		{"notes", collab.Key{Collection: "notes", ID: "x"}, true},
		{"notes/a*c", collab.Key{Collection: "notes", ID: "abbbc"}, true},
		{"notes/a*c", collab.Key{Collection: "notes", ID: "abbbd"}, false},
		{"notes/*-draft", collab.Key{Collection: "notes", ID: "x-draft-draft"}, true},
		{"notes/**", collab.Key{Collection: "notes", ID: ""}, true},
		{"n*s/x", collab.Key{Collection: "notes", ID: "x"}, true},
		{"notes/x", collab.Key{Collection: "notes", ID: "X"}, false},
	}
	for _, tt := range tests {
		if got := (collab.Grant{Pattern: tt.pattern}).Matches(tt.key); got != tt.want {
			t.Errorf("Grant{%q}.Matches(%v) = %v, want %v", tt.pattern, tt.key, got, tt.want)
		}
	}
}

func TestCheckPattern(t *testing.T) {
	for _, p := range []string{"notes/*", "*/*", "notes", "a/b/c"} {
		if err := collab.CheckPattern(p); err != nil {
			t.Errorf("CheckPattern(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"", "/x", "notes/"} {
		if err := collab.CheckPattern(p); err == nil {
			t.Errorf("CheckPattern(%q) = nil, want an error", p)
		}
	}
}
