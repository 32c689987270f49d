package testenv

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
)

// StripeMockLatestBin returns the StripeMockLatest binary, installing it
// with go install into a directory of its own (see toolBin) when it is not
// there yet, so that it never replaces the stripe-mock that checks the
// client's requests. It fails the test when it cannot: never a skip.
func StripeMockLatestBin(t testing.TB) string {
	t.Helper()
	bin, err := toolBin(StripeMockModule, StripeMockLatestRelease)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return bin
}

// StartStripeMockLatest runs StripeMockLatest (installing it when needed)
// without -strict-version-check, since stripe-go v76 sends 2023-10-16, and
// returns its HTTP base URL. It is killed when the test ends.
func StartStripeMockLatest(t testing.TB) string {
	t.Helper()
	return startStripeMock(t, StripeMockLatestBin(t))
}

// StripeMockLatestSpec returns the path of the OpenAPI description that
// StripeMockLatest embeds, from the module cache (go mod download).
func StripeMockLatestSpec(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", StripeMockLatest).Output()
	if err != nil {
		t.Fatalf("testenv: go mod download %s: %v", StripeMockLatest, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("testenv: go mod download %s: no Dir in %s", StripeMockLatest, out)
	}
	return filepath.Join(mod.Dir, "embedded", "openapi", "spec3.json")
}
