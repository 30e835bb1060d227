package editlog

import (
	"fmt"
	"unicode/utf8"
)

// checkJSONText rejects what encoding/json would silently turn into
// U+FFFD, changing the text and its code-point length: invalid UTF-8 and
// \u escapes that are lone UTF-16 surrogates. It scans the raw JSON text
// of a line or a whole file; the JSON grammar itself is left to the
// decoder. The offset in an error is a byte offset into data.
func checkJSONText(data []byte) error {
	if !utf8.Valid(data) {
		for i := 0; i < len(data); {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n <= 1 {
				return fmt.Errorf("%w: invalid UTF-8 at byte %d", ErrFormat, i)
			}
			i += n
		}
	}
	inString := false
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case c == '"':
			inString = !inString
		case c == '\\' && inString:
			if i+1 >= len(data) {
				return nil // truncated; the decoder reports it
			}
			if data[i+1] != 'u' {
				i++ // a two-byte escape such as \" or \\
				continue
			}
			u, ok := hex4(data, i+2)
			if !ok {
				return nil // malformed escape; the decoder reports it
			}
			switch {
			case u >= 0xDC00 && u <= 0xDFFF:
				return fmt.Errorf("%w: lone low surrogate \\u%04X at byte %d", ErrFormat, u, i)
			case u >= 0xD800 && u <= 0xDBFF:
				// Must be followed at once by a low surrogate escape.
				if i+12 <= len(data) && data[i+6] == '\\' && data[i+7] == 'u' {
					if lo, ok := hex4(data, i+8); ok && lo >= 0xDC00 && lo <= 0xDFFF {
						i += 11
						continue
					}
				}
				return fmt.Errorf("%w: lone high surrogate \\u%04X at byte %d", ErrFormat, u, i)
			}
			i += 5
		}
	}
	return nil
}

// hex4 parses the four hex digits at data[i:i+4].
func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
