// Package jsondecode decodes the JSON of the hot paths (webhook bodies,
// Stripe objects) faster than encoding/json, with encoding/json's result.
//
// github.com/segmentio/encoding/json reads the same JSON into the same Go
// values, in one pass where encoding/json makes two or more (it validates
// the whole input first, then decodes, and each nested value with an
// UnmarshalJSON method is scanned again): a Stripe event and its
// subscription read in about a quarter of the time. Its errors are not
// encoding/json's, though: they quote the input, and may cut a UTF-8
// character in two, and they end up in stored event reasons and HTTP
// answers. So whatever it refuses is decoded again by encoding/json, whose
// answer stands. So is input nested deeper than encoding/json takes
// (10,000 levels), which the fast decoder would read, recursing that deep,
// and input with an object key that is not plain ASCII, which the two
// match to fields differently (see plain).
// The tests check, on fuzzed input, that both decoders give the same values
// and the same errors.
package jsondecode

import (
	"encoding/json"
	"reflect"
	"sync/atomic"

	fast "github.com/segmentio/encoding/json"
)

// reference, while above zero, makes Unmarshal use encoding/json alone.
var reference atomic.Int32

// Unmarshal decodes data into v, a non-nil pointer, as json.Unmarshal does.
func Unmarshal(data []byte, v any) error {
	if reference.Load() == 0 && plain(data) && fast.Unmarshal(data, v) == nil {
		return nil
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv.Elem().SetZero() // what the fast decoder left half-written
	}
	return json.Unmarshal(data, v)
}

// Reference runs fn with Unmarshal decoding by encoding/json alone, for
// tests comparing the two. Decoding elsewhere meanwhile is slower, with
// the same results.
func Reference(fn func()) {
	reference.Add(1)
	defer reference.Add(-1)
	fn()
}

// maxDepth is encoding/json's limit on nesting.
const maxDepth = 10000

// plain reports whether the fast decoder reads data as encoding/json
// does: data nests arrays and objects at most maxDepth deep, and every
// object key is printable ASCII without escapes. encoding/json matches a
// key to a field folding Unicode case fully ("ſtatus" is "status"), the
// fast decoder only ASCII case; with such a key it would quietly read the
// field as absent. Brackets inside strings do not count.
func plain(data []byte) bool {
	var stack [64]bool // per open container: is it an object (beyond 64 deep: objects assumed, which only sends more keys to the check)
	depth, inString, escaped, isKey, wantKey := 0, false, false, false, false
	for _, c := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				if isKey {
					return false
				}
				escaped = true
			case c == '"':
				inString = false
			case isKey && c >= 0x80:
				return false
			}
			continue
		}
		switch c {
		case '"':
			inString, isKey, wantKey = true, wantKey, false
		case '{', '[':
			if depth++; depth > maxDepth {
				return false
			}
			if depth <= len(stack) {
				stack[depth-1] = c == '{'
			}
			wantKey = c == '{'
		case '}', ']':
			if depth == 0 {
				return false // unbalanced: encoding/json says how
			}
			depth--
			wantKey = false
		case ',':
			wantKey = depth > 0 && (depth > len(stack) || stack[depth-1])
		}
	}
	return true
}
