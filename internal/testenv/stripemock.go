package testenv

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StripeMockInstall is the command that installs the stripe-mock version the
// tests are written against (it speaks Stripe API version 2023-10-16).
const StripeMockInstall = "go install github.com/stripe/stripe-mock@v0.183.0"

// StartStripeMock runs stripe-mock with -strict-version-check on free ports of
// 127.0.0.1 (HTTP and HTTPS), waits until it answers and returns its HTTP
// base URL, http://127.0.0.1:<port>. It is killed when the test ends. The
// binary is STRIPE_MOCK_BIN, else stripe-mock in PATH, else in
// $(go env GOPATH)/bin.
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
	client := &http.Client{Timeout: 2 * time.Second}
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
		ready: func(ports []int) error {
			resp, err := client.Get(stripeMockURL(ports[0]) + "/v1/customers")
			if err != nil {
				return err
			}
			return resp.Body.Close()
		},
		dir:      dir,
		logPath:  filepath.Join(dir, "stripe-mock.log"),
		stopSig:  syscall.SIGTERM,
		killSig:  syscall.SIGKILL,
		deathSig: syscall.SIGKILL,
		timeout:  time.Minute,
	}
	t.Cleanup(func() { srv.cleanup(t) })
	srv.launch(t)
	return stripeMockURL(srv.ports[0])
}

func stripeMockURL(port int) string {
	return "http://127.0.0.1:" + strconv.Itoa(port)
}

// stripeMockBin finds the stripe-mock binary.
func stripeMockBin() (string, error) {
	if bin := os.Getenv("STRIPE_MOCK_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("STRIPE_MOCK_BIN: %w", err)
		}
		return bin, nil
	}
	if bin, err := exec.LookPath("stripe-mock"); err == nil {
		return bin, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("stripe-mock is not in PATH, and go env GOPATH failed: %w", err)
	}
	for _, gopath := range filepath.SplitList(string(bytes.TrimSpace(out))) {
		bin := filepath.Join(gopath, "bin", "stripe-mock")
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
	}
	return "", fmt.Errorf("stripe-mock not found in STRIPE_MOCK_BIN, PATH or %s",
		strings.TrimSpace(string(out))+"/bin")
}
