package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var toolInstall sync.Mutex

// toolBin returns the binary name of module@version, installing it with
// go install into <user cache>/subsync/<name>-<version> when it is not there
// yet: each version has a directory of its own, so two versions of one tool
// never replace each other.
func toolBin(module, version string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for %s: %w", module, err)
	}
	name := filepath.Base(module)
	dir := filepath.Join(cache, "subsync", name+"-"+version)
	bin := filepath.Join(dir, name)
	toolInstall.Lock()
	defer toolInstall.Unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	cmd := exec.Command("go", "install", module+"@"+version)
	cmd.Env = append(os.Environ(), "GOBIN="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("GOBIN=%s go install %s@%s: %w\n%s", dir, module, version, err, out)
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("go install %s@%s left no %s: %w", module, version, bin, err)
	}
	return bin, nil
}

// debianBin finds the binary name of a Debian package: the variable env
// when set, else name in PATH, else /usr/bin/name. When none exists and the
// process runs as root with apt-get at hand, it installs the package (as
// the Debian image of CI needs); otherwise the error names the package.
func debianBin(env, name, pkg string) (string, error) {
	if bin := os.Getenv(env); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("%s: %w", env, err)
		}
		return bin, nil
	}
	find := func() (string, bool) {
		if bin, err := exec.LookPath(name); err == nil {
			return bin, true
		}
		_, err := os.Stat("/usr/bin/" + name)
		return "/usr/bin/" + name, err == nil
	}
	if bin, ok := find(); ok {
		return bin, nil
	}
	if err := aptInstall(pkg); err != nil {
		return "", fmt.Errorf("%s not found in %s, PATH or /usr/bin: %w\n"+
			"install the Debian package %s (apt-get install -y %s)", name, env, err, pkg, pkg)
	}
	if bin, ok := find(); ok {
		return bin, nil
	}
	return "", fmt.Errorf("%s still missing after installing the Debian package %s", name, pkg)
}

var aptOnce sync.Mutex

// aptInstall installs a Debian package when running as root.
func aptInstall(pkg string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root, so not installing %s", pkg)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("no apt-get to install %s", pkg)
	}
	aptOnce.Lock()
	defer aptOnce.Unlock()
	install := func() ([]byte, error) {
		cmd := exec.Command("apt-get", "install", "-y", "-q", "--no-install-recommends", pkg)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	if _, err := install(); err == nil {
		return nil
	}
	if out, err := exec.Command("apt-get", "update", "-q").CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update: %w\n%s", err, out)
	}
	if out, err := install(); err != nil {
		return fmt.Errorf("apt-get install %s: %w\n%s", pkg, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// PromtoolBin returns promtool: PROMTOOL_BIN, else promtool in PATH or
// /usr/bin, else installed from the Debian package prometheus when the
// tests run as root. Otherwise the test fails naming the package.
func PromtoolBin(t testing.TB) string {
	t.Helper()
	bin, err := debianBin("PROMTOOL_BIN", "promtool", PrometheusPackage)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return bin
}

// BuildSubsyncd builds the subsyncd binary of this tree into a temporary
// directory of the test and returns its path.
func BuildSubsyncd(t testing.TB) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "subsyncd")
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/subsync/subsync/cmd/subsyncd")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: go build ./cmd/subsyncd: %v\n%s", err, out)
	}
	return bin
}
