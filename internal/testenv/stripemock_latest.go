package testenv

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// StripeMockLatest is the stripe-mock release whose embedded OpenAPI
// description is of API version 2026-08-26.dahlia: its subscriptions carry
// their billing period only on their items, its invoices name their
// subscription under parent.subscription_details. It is installed into a
// directory of its own, so that it never replaces the stripe-mock of
// StripeMockInstall (the same binary name) that checks the client's
// requests.
const StripeMockLatest = "github.com/stripe/stripe-mock@v0.203.0"

// StripeMockLatestVersion is the API version StripeMockLatest describes.
const StripeMockLatestVersion = "2026-08-26.dahlia"

var latestInstall sync.Mutex

// StripeMockLatestBin returns the StripeMockLatest binary, installing it
// with go install into <user cache>/subsync/stripe-mock-v0.203.0 when it
// is not there yet. It fails the test when it cannot: never a skip.
func StripeMockLatestBin(t testing.TB) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("testenv: no cache directory for %s: %v", StripeMockLatest, err)
	}
	dir := filepath.Join(cache, "subsync", "stripe-mock-v0.203.0")
	bin := filepath.Join(dir, "stripe-mock")
	latestInstall.Lock()
	defer latestInstall.Unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "install", StripeMockLatest)
	cmd.Env = append(os.Environ(), "GOBIN="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: GOBIN=%s go install %s: %v\n%s", dir, StripeMockLatest, err, out)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("testenv: go install %s left no %s: %v", StripeMockLatest, bin, err)
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
