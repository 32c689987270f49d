package testenv

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/subsync/subsync/internal/childproc"
)

// errExitedEarly marks a server that exited before it became ready, most
// often because another process took its port first.
var errExitedEarly = errors.New("exited before it was ready")

// server runs one server binary on ports chosen once, so that it can be
// stopped and started again at the same address.
type server struct {
	name     string // for messages
	bin      string // path of the binary
	args     func(ports []int) []string
	ready    func(ports []int) error // one readiness probe
	nports   int                     // how many ports args needs
	env      []string                // nil: the test's environment
	dir      string                  // working directory, holds the log
	cred     *syscall.Credential     // nil: run as the test's user
	stopSig  syscall.Signal          // graceful stop; 0: SIGTERM
	killSig  syscall.Signal          // abrupt stop; 0: SIGKILL
	deathSig syscall.Signal          // sent by the kernel if the test binary dies; 0: SIGKILL
	timeout  time.Duration           // how long a start may take; 0: a minute

	mu    sync.Mutex
	ports []int
	proc  *childproc.Proc
}

// logPath is the file of the server's output, <dir>/<name>.log.
func (s *server) logPath() string { return filepath.Join(s.dir, s.name+".log") }

// httpProbe is a readiness probe that GETs path from the server's first
// port (base URL baseURL(port)); with wantOK only a 200 counts, else any
// answer does.
func httpProbe(baseURL func(port int) string, path string, wantOK bool) func(ports []int) error {
	client := &http.Client{Timeout: 2 * time.Second}
	return func(ports []int) error {
		resp, err := client.Get(baseURL(ports[0]) + path)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if wantOK && resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s answered %s", path, resp.Status)
		}
		return nil
	}
}

// control is what a test does to a server it owns: stop it and start it
// again on the same ports.
type control struct{ srv *server }

// startControl makes a server with newServer in a directory named after
// pattern and launches it for the test. A server newServer returns with an
// error is cleaned up before the test fails.
func startControl(t testing.TB, newServer func(pattern string) (*server, error), pattern string) control {
	t.Helper()
	srv, err := newServer(pattern)
	if err != nil {
		if srv != nil {
			srv.cleanup(t)
		}
		t.Fatalf("testenv: %v", err)
	}
	srv.launch(t)
	return control{srv}
}

// Stop shuts the server down gracefully and waits for it to exit. It does
// nothing if the server is not running.
func (c control) Stop(t testing.TB) {
	t.Helper()
	c.srv.stop(t, c.srv.stopSig)
}

// Start starts the server again on the same ports and waits until it is
// ready. It does nothing if the server is running.
func (c control) Start(t testing.TB) {
	t.Helper()
	c.srv.start(t)
}

// launch picks free ports and starts the server, failing the test when it
// cannot, and has it cleaned up when the test ends.
func (s *server) launch(t testing.TB) {
	t.Helper()
	t.Cleanup(func() { s.cleanup(t) })
	if err := s.launchErr(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// launchErr picks free ports and starts the server, trying new ports when
// the server exits early (a port taken between freePort and bind).
func (s *server) launchErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopSig = cmp.Or(s.stopSig, syscall.SIGTERM)
	s.killSig = cmp.Or(s.killSig, syscall.SIGKILL)
	s.deathSig = cmp.Or(s.deathSig, syscall.SIGKILL)
	s.timeout = cmp.Or(s.timeout, time.Minute)
	var err error
	for range 3 {
		s.ports = s.ports[:0]
		for range s.nports {
			port, perr := freePort()
			if perr != nil {
				return fmt.Errorf("%s: %w", s.name, perr)
			}
			s.ports = append(s.ports, port)
		}
		if err = s.startLocked(); err == nil || !errors.Is(err, errExitedEarly) {
			break
		}
	}
	return err
}

// port returns the i-th of the server's ports, the same across stops and
// starts.
func (s *server) port(i int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ports[i]
}

// start starts the server again on its ports; it does nothing when the
// server is running.
func (s *server) start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.startLocked(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// stop sends sig and waits for the server to exit; it does nothing when the
// server is not running.
func (s *server) stop(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := s.stopErr(sig); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

func (s *server) stopErr(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	if err := s.proc.Stop(sig, 30*time.Second); err != nil {
		return fmt.Errorf("stop %s: %w", s.name, err)
	}
	return nil
}

func (s *server) startLocked() error {
	if s.proc != nil && !s.proc.Exited() {
		return nil
	}
	cmd := exec.Command(s.bin, s.args(s.ports)...)
	cmd.Dir = s.dir
	cmd.Env = s.env
	cmd.SysProcAttr = sysProcAttr(s.cred, s.deathSig)
	p, err := childproc.Start(cmd, s.logPath())
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	s.proc = p
	deadline := time.Now().Add(s.timeout)
	for {
		err := s.ready(s.ports)
		if p.Exited() {
			return fmt.Errorf("%s on ports %v %w (%v); its log %s ends with:\n%s",
				s.name, s.ports, errExitedEarly, p.Err(), s.logPath(), childproc.Tail(s.logPath(), 20))
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			_ = p.Stop(syscall.SIGKILL, 5*time.Second)
			return fmt.Errorf("%s on ports %v not ready after %s: %w; its log %s ends with:\n%s",
				s.name, s.ports, s.timeout, err, s.logPath(), childproc.Tail(s.logPath(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cleanup stops the server abruptly and removes its directory; on a failed
// test it logs the end of the server's output first.
func (s *server) cleanup(t testing.TB) {
	if err := s.stopErr(s.killSig); err != nil {
		t.Errorf("testenv: %v", err)
	}
	if t.Failed() {
		t.Logf("testenv: %s log (last lines):\n%s", s.name, childproc.Tail(s.logPath(), 30))
	}
	if err := os.RemoveAll(s.dir); err != nil {
		t.Errorf("testenv: remove %s: %v", s.dir, err)
	}
}

// makeServerDir creates a private directory for a server, owned by cred's
// user when set.
func makeServerDir(prefix string, cred *syscall.Credential) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", fmt.Errorf("create server directory: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("chown %s: %w", dir, err)
		}
	}
	return dir, nil
}

// hasPrefixAny reports whether s starts with one of prefixes.
func hasPrefixAny(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
