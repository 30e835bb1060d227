package collab

import (
	"fmt"
	"testing"
)

// TestDocSet checks the registry's document set as a list and after it
// moved to a map: lookups, replacement, deletion, and the keys.
func TestDocSet(t *testing.T) {
	var d docSet
	key := func(i int) Key { return Key{Collection: "c", ID: fmt.Sprint(i)} }
	joins := map[Key]*docJoin{}
	check := func(stage string) {
		t.Helper()
		if d.len() != len(joins) {
			t.Fatalf("%s: len %d, want %d", stage, d.len(), len(joins))
		}
		for k, j := range joins {
			if d.get(k) != j {
				t.Fatalf("%s: get(%v) is not its join", stage, k)
			}
		}
		seen := map[Key]bool{}
		d.keys(func(k Key) { seen[k] = true })
		if len(seen) != len(joins) {
			t.Fatalf("%s: keys gave %d, want %d", stage, len(seen), len(joins))
		}
		for k := range joins {
			if !seen[k] {
				t.Fatalf("%s: keys left out %v", stage, k)
			}
		}
		if d.get(key(-1)) != nil {
			t.Fatalf("%s: get of an absent key", stage)
		}
	}
	for i := range 3 * docSetList {
		j := &docJoin{}
		d.set(key(i), j)
		joins[key(i)] = j
		check(fmt.Sprintf("after %d sets", i+1))
		if i == 2 {
			j2 := &docJoin{}
			d.set(key(1), j2) // replaces
			joins[key(1)] = j2
			d.del(key(0))
			delete(joins, key(0))
			check("list: replaced and deleted")
		}
		// One was deleted at i == 2: the list holds i entries from then on.
		if inList := i < 3 || i <= docSetList; inList != (d.m == nil) {
			t.Fatalf("after %d sets: map %v", i+1, d.m != nil)
		}
	}
	for i := range 3 * docSetList {
		d.del(key(i))
		delete(joins, key(i))
		check(fmt.Sprintf("after deleting %d", i))
	}
	var e docSet
	e.set(key(1), &docJoin{})
	e.del(key(1))
	if e.len() != 0 || e.list != nil {
		t.Fatalf("emptied list: len %d, list %v", e.len(), e.list)
	}
}
