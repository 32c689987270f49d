package chaos

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildDaemon builds the real subsyncd binary into a temporary directory.
func buildDaemon(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "subsyncd")
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/subsync/subsync/cmd/subsyncd")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/subsyncd: %v\n%s", err, out)
	}
	return bin
}

// daemon is `subsyncd serve` running as a child process, on the same
// addresses across restarts, its output appended to one log file.
type daemon struct {
	bin     string
	env     []string
	listen  string
	logPath string

	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	starts  int
	kills   int
}

// start starts the daemon and waits until /healthz answers; the test fails
// when it exits first or does not answer within a minute.
func (d *daemon) start(t *testing.T) {
	t.Helper()
	if d.running() {
		return
	}
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	d.starts++
	fmt.Fprintf(logf, "=== chaos: start #%d at %s\n", d.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(d.bin, "serve")
	cmd.Env = d.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = daemonProcAttr()
	err = cmd.Start()
	logf.Close() // the child has its own descriptor
	if err != nil {
		t.Fatalf("start subsyncd: %v", err)
	}
	d.cmd, d.done, d.waitErr = cmd, make(chan struct{}), nil
	done := d.done
	go func() {
		d.waitErr = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(time.Minute)
	client := &http.Client{Timeout: time.Second}
	for {
		if !d.running() {
			t.Fatalf("subsyncd exited at start: %v\n%s", d.waitErr, d.logTail(30))
		}
		if resp, err := client.Get("http://" + d.listen + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("subsyncd does not answer /healthz after a minute\n%s", d.logTail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *daemon) running() bool {
	if d.done == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL, as a crash or the OOM killer would, and waits for the
// process to be gone.
func (d *daemon) kill(t *testing.T) {
	t.Helper()
	if !d.running() {
		return
	}
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("SIGKILL subsyncd: %v", err)
	}
	<-d.done
	d.kills++
}

// terminate sends SIGTERM and returns how the daemon exited: nil for
// status 0. It kills the daemon when it has not exited within a minute.
func (d *daemon) terminate() error {
	if !d.running() {
		return nil
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return d.waitErr
	case <-time.After(time.Minute):
		_ = d.cmd.Process.Kill()
		<-d.done
		return errors.New("subsyncd did not exit within a minute of SIGTERM; killed")
	}
}

// logTail returns the last n lines of the daemon's output.
func (d *daemon) logTail(n int) string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logCount counts the daemon's log lines that contain s.
func (d *daemon) logCount(s string) int {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), s)
}
