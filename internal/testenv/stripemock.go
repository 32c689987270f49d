package testenv

import (
	"fmt"
	"os"
	"strconv"
	"testing"
)

// StartStripeMock runs stripe-mock with -strict-version-check on free ports of
// 127.0.0.1 (HTTP and HTTPS), waits until it answers and returns its HTTP
// base URL, http://127.0.0.1:<port>. It is killed when the test ends. The
// binary is STRIPE_MOCK_BIN, else StripeMockVersion installed with go
// install (see toolBin) the first time.
func StartStripeMock(t testing.TB) string {
	t.Helper()
	bin, err := stripeMockBin()
	if err != nil {
		t.Fatalf("testenv: %v\ninstall it with: %s", err, StripeMockInstall)
	}
	return startStripeMock(t, bin, "-strict-version-check")
}

// startStripeMock runs bin with extra flags and the address flags.
func startStripeMock(t testing.TB, bin string, extra ...string) string {
	t.Helper()
	dir, err := makeServerDir("subsync-stripe-mock-*", nil)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	srv := &server{
		name:   "stripe-mock",
		bin:    bin,
		nports: 2,
		args: func(ports []int) []string {
			return append(append([]string(nil), extra...),
				"-http-addr", "127.0.0.1:"+strconv.Itoa(ports[0]),
				"-https-addr", "127.0.0.1:"+strconv.Itoa(ports[1]),
			)
		},
		ready: httpProbe(stripeMockURL, "/v1/customers", false),
		dir:   dir,
	}
	srv.launch(t)
	return stripeMockURL(srv.ports[0])
}

func stripeMockURL(port int) string {
	return "http://127.0.0.1:" + strconv.Itoa(port)
}

// stripeMockBin finds the stripe-mock binary of StripeMockVersion.
func stripeMockBin() (string, error) {
	if bin := os.Getenv("STRIPE_MOCK_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("STRIPE_MOCK_BIN: %w", err)
		}
		return bin, nil
	}
	return toolBin(StripeMockModule, StripeMockVersion)
}
