// Package ot is the operational-transformation algebra of coedit's text
// documents: ShareDB's text-unicode type (URI
// http://sharejs.org/types/text-unicode), behaving exactly like the npm
// package ot-text-unicode 4.0.0, which a differential test checks on
// random inputs.
//
// An Op is a list of Components read left to right over a document: skip
// N code points, insert text, or delete N code points (optionally saying
// which text). Lengths and positions count Unicode code points, not bytes
// or UTF-16 units. Its JSON form is the reference's:
//
//	[3, "hi", {"d": 2}, 4, {"d": "lost"}]
//
// Where to start:
//
//   - Decode and Op.MarshalJSON convert ops to and from JSON, strictly:
//     malformed numbers, invalid UTF-8 and lone UTF-16 surrogate escapes
//     are refused before anything could turn them into U+FFFD.
//   - Apply applies an op to a string. It refuses an op that runs past
//     the end of the document (ErrOutOfBounds).
//   - Transform rewrites an op to follow a concurrent one, with Side
//     breaking ties between inserts at the same place (see "Which
//     side" below); Compose joins two consecutive ops into one; Invert
//     undoes an op whose deletes carry their text; Normalize puts an op
//     in canonical form.
//   - TransformPosition and TransformPresence move cursors and selections
//     through an op.
//
// Every function is pure and safe for concurrent use, never panics on any
// input, and does work that grows with the size of the op and the
// document, never with the numbers inside the op: skips and deletes of
// 2^50 code points cost the same as skips of 5.
//
// Which side: a server compatible with ShareDB transforms the op that
// arrives later over each op committed since its base version with Left
// (ShareDB's transform(incoming, committed, "left")), so of two inserts
// at the same place the later-committed one lands first; coedit's
// session does the same. A ShareDB client with an op in flight applies
// the server's op transformed over its own with Right, and its own
// transformed over the server's with Left (transformX). The two sides
// must be opposite for every copy to converge, so a server that used
// Right for the later op would diverge from ShareDB clients whenever two
// inserts tie. ExampleTransform shows both halves.
//
// A valid op (Validate) is canonical as the reference requires: no empty
// components, no two skips in a row, no trailing skip. Functions that take
// ops check this and return errors wrapping ErrInvalidOp.
package ot
