package redisrelay

import (
	"strings"

	"github.com/coedit/coedit/collab"
)

// docKeys are the Redis keys of one document. They share the hash tag
// {<collection>.<id>} (escaped, see tag), so they live in one Redis
// Cluster slot and one Lua script may touch them all; the pub/sub
// channel has the same tag, so a sharded publish from the script stays
// on that slot's node too.
type docKeys struct {
	meta, log, seqs, snap, channel string
	// replaced holds the clients that hold a history the cluster
	// replaced (replaced.go).
	replaced string
	// turn names the writer whose turn the next commit is (turn.go).
	turn string
}

func (r *Relay) keys(k collab.Key) docKeys {
	base := KeyBase(r.opts.Prefix, k)
	return docKeys{
		meta:     base + "meta",
		log:      base + "log",
		seqs:     base + "seqs",
		snap:     base + "snap",
		channel:  base + "ch",
		replaced: base + "replaced",
		turn:     base + "turn",
	}
}

// KeyBase returns what the Redis keys of document k begin with, under a
// Relay with Options.Prefix prefix: "<prefix>{<collection>.<id>}:", then
// meta, log, seqs, snap, ch, replaced or turn (doc.go has the layout). For
// inspecting a document in Redis, and for tests that break it.
func KeyBase(prefix string, k collab.Key) string {
	return prefix + "{" + tag(k) + "}:"
}

// tag returns "<collection>.<id>" with '%', '.', '{' and '}' written as
// %25, %2E, %7B and %7D. Escaping '.' keeps the pair unambiguous
// (collection "a.b" id "c" differs from "a" and "b.c"); escaping the
// braces keeps a '}' in an id from ending the hash tag early, which would
// scatter a document's keys over slots. Other bytes pass unchanged, so
// keys stay readable in redis-cli.
func tag(k collab.Key) string {
	return escape(k.Collection) + "." + escape(k.ID)
}

func escape(s string) string {
	if !strings.ContainsAny(s, "%.{}") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			b.WriteString("%25")
		case '.':
			b.WriteString("%2E")
		case '{':
			b.WriteString("%7B")
		case '}':
			b.WriteString("%7D")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
