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

func TestShallowIgnoresBracketsInStrings(t *testing.T) {
	deepString := `{"s":"` + strings.Repeat(`[`, 2*maxDepth) + `\"` + strings.Repeat(`{`, 2*maxDepth) + `"}`
	if !shallow([]byte(deepString)) {
		t.Error("brackets inside a string counted as nesting")
	}
	if shallow([]byte(strings.Repeat("[", maxDepth+1))) {
		t.Error("nesting past the limit not seen")
	}
}
