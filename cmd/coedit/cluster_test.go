package main

import (
	"reflect"
	"testing"
)

// TestParseRedis: --redis takes one server (URL or host:port) or a
// comma-separated list of Redis Cluster seeds.
func TestParseRedis(t *testing.T) {
	for _, tc := range []struct {
		in      string
		cluster bool
		addrs   []string
		db      int
		pass    string
	}{
		{"127.0.0.1:6379", false, []string{"127.0.0.1:6379"}, 0, ""},
		{"redis://:secret@db.example:6380/3", false, []string{"db.example:6380"}, 3, "secret"},
		{"h1:7000,h2:7001, redis://h3:7002", true, []string{"h1:7000", "h2:7001", "h3:7002"}, 0, ""},
		{"redis://:pw@h1:7000,", true, []string{"h1:7000"}, 0, "pw"},
	} {
		spec, err := parseRedis(tc.in)
		if err != nil || spec.cluster != tc.cluster || !reflect.DeepEqual(spec.addrs, tc.addrs) {
			t.Fatalf("parseRedis(%q) = %+v, %v; want cluster %v, addrs %v", tc.in, spec, err, tc.cluster, tc.addrs)
		}
		if !tc.cluster && (spec.single.DB != tc.db || spec.single.Password != tc.pass) {
			t.Errorf("parseRedis(%q) = db %d, password %q; want %d, %q", tc.in, spec.single.DB, spec.single.Password, tc.db, tc.pass)
		}
		if tc.cluster {
			if p, _ := spec.auth.User.Password(); tc.pass != "" && p != tc.pass {
				t.Errorf("parseRedis(%q) password %q, want %q", tc.in, p, tc.pass)
			}
		}
	}
	for _, bad := range []string{"", ",", "http://h:1", "redis://", "redis://h:1/x"} {
		if _, err := parseRedis(bad); err == nil {
			t.Errorf("parseRedis(%q) = nil error, want one", bad)
		}
	}
}
