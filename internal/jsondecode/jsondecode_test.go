package jsondecode

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// Input nested deeper than encoding/json takes gets encoding/json's error,
// not the fast decoder's reading of it; at the limit, both read it alike.
func TestDepthAsEncodingJSON(t *testing.T) {
	for _, depth := range []int{maxDepth - 1, maxDepth, maxDepth + 1, 100000} {
		for _, open := range []string{"[", `{"a":`} {
			closer := map[string]string{"[": "]", `{"a":`: "}"}[open]
			doc := `{"id":"x","data":` + strings.Repeat(open, depth) + `1` + strings.Repeat(closer, depth) + `, "s":"[[[{{{\"[["}`
			var got, want map[string]any
			gotErr := Unmarshal([]byte(doc), &got)
			wantErr := json.Unmarshal([]byte(doc), &want)
			if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
				t.Errorf("depth %d of %q: %v; encoding/json: %v", depth, open, gotErr, wantErr)
			}
			if (wantErr != nil) != (depth+1 > maxDepth) {
				t.Errorf("depth %d: encoding/json's error %v: the limit is not %d", depth, wantErr, maxDepth)
			}
		}
	}
}

// A key encoding/json matches to a field only by Unicode case folding
// ("ſtatus" is "status", "\u212aey" is "key") is read as encoding/json
// reads it; so are non-ASCII values and escapes in values.
func TestUnicodeKeysAsEncodingJSON(t *testing.T) {
	type doc struct {
		Status string            `json:"status"`
		Key    string            `json:"key"`
		Meta   map[string]string `json:"meta"`
		List   []string          `json:"list"`
	}
	for _, in := range []string{
		`{"status":"active","ſtatus":"canceled"}`,
		`{"status":"active","\u017ftatus":"canceled"}`,
		`{"\u212aey":"kelvin","list":["ſ","\u017f"]}`,
		`{"meta":{"ſ":"x"},"status":"é\u00e9"}`,
		`{"list":["{\"ſtatus\":1}",","],"status":"ok"}`,
	} {
		var got, want doc
		gotErr := Unmarshal([]byte(in), &got)
		wantErr := json.Unmarshal([]byte(in), &want)
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: read %+v (%v); encoding/json %+v (%v)", in, got, gotErr, want, wantErr)
		}
	}
	for in, fast := range map[string]bool{
		`{"status":"é","list":["ſ"]}`:  true,
		`{"a":{"b":[{"c":"\u00e9"}]}}`: true,
		`{"a":{"b":[{"ſ":1}]}}`:        false,
		`{"a":1,"\u0062":2}`:           false,
		`{"a":["x",{"é":1}]}`:          false,
		`["ſ",{"k":"ſ"},"ſ"]`:          true,
		"}[":                           false, "][0": false, `}{"ſ":1}`: false, `]]`: false,
	} {
		if plain([]byte(in)) != fast {
			t.Errorf("plain(%s) = %v, want %v", in, !fast, fast)
		}
	}
}

func TestShallowIgnoresBracketsInStrings(t *testing.T) {
	deepString := `{"s":"` + strings.Repeat(`[`, 2*maxDepth) + `\"` + strings.Repeat(`{`, 2*maxDepth) + `"}`
	if !plain([]byte(deepString)) {
		t.Error("brackets inside a string counted as nesting")
	}
	if plain([]byte(strings.Repeat("[", maxDepth+1))) {
		t.Error("nesting past the limit not seen")
	}
}
