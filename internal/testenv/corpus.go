package testenv

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// CorpusEvents returns the bodies of the recorded Stripe events (*.json)
// in dirs, e.g. ../testdata/stripe-events, for seeding fuzz targets; with
// objects set, each event's data.object instead (events without one are
// left out).
func CorpusEvents(tb testing.TB, objects bool, dirs ...string) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil || len(files) == 0 {
			tb.Fatalf("no event in %s (%v)", dir, err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				tb.Fatal(err)
			}
			if !objects {
				out = append(out, b)
				continue
			}
			var ev struct {
				Data struct {
					Object json.RawMessage `json:"object"`
				} `json:"data"`
			}
			if json.Unmarshal(b, &ev) == nil && len(ev.Data.Object) > 0 {
				out = append(out, ev.Data.Object)
			}
		}
	}
	return out
}
