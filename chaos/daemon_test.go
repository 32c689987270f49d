package chaos

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/subsync/subsync/internal/childproc"
)

// daemon is `subsyncd serve` running as a child process, on the same
// addresses across restarts, its output appended to one log file.
type daemon struct {
	bin     string
	env     []string
	listen  string
	logPath string

	proc   *childproc.Proc
	starts int
	kills  int
}

// start starts the daemon and waits until /healthz answers; the test fails
// when it exits first or does not answer within a minute.
func (d *daemon) start(t *testing.T) {
	t.Helper()
	if d.running() {
		return
	}
	d.starts++
	if err := appendLog(d.logPath, fmt.Sprintf("=== chaos: start #%d at %s\n", d.starts, time.Now().Format(time.RFC3339Nano))); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(d.bin, "serve")
	cmd.Env = d.env
	cmd.SysProcAttr = daemonProcAttr()
	p, err := childproc.Start(cmd, d.logPath)
	if err != nil {
		t.Fatalf("start subsyncd: %v", err)
	}
	d.proc = p
	deadline := time.Now().Add(time.Minute)
	client := &http.Client{Timeout: time.Second}
	for {
		if !d.running() {
			t.Fatalf("subsyncd exited at start: %v\n%s", d.proc.Err(), d.logTail(30))
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

// running reports whether the daemon has been started and not exited.
func (d *daemon) running() bool { return d.proc != nil && !d.proc.Exited() }

// kill sends SIGKILL, as a crash or the OOM killer would, and waits for the
// process to be gone.
func (d *daemon) kill(t *testing.T) {
	t.Helper()
	if !d.running() {
		return
	}
	if err := d.proc.Stop(syscall.SIGKILL, time.Minute); err != nil {
		t.Fatalf("SIGKILL subsyncd: %v", err)
	}
	d.kills++
}

// terminate sends SIGTERM and returns how the daemon exited: nil for
// status 0. It kills the daemon when it has not exited within a minute.
func (d *daemon) terminate() error {
	if !d.running() {
		return nil
	}
	if err := d.proc.Stop(syscall.SIGTERM, time.Minute); err != nil {
		return err
	}
	return d.proc.Err()
}

// logTail returns the last n lines of the daemon's output.
func (d *daemon) logTail(n int) string { return childproc.Tail(d.logPath, n) }

// appendLog appends line to the log file at path.
func appendLog(path, line string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(line)
	return errors.Join(err, f.Close())
}

// logCount counts the daemon's log lines that contain s.
func (d *daemon) logCount(s string) int {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), s)
}
