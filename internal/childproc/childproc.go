// Package childproc runs a program as a child process with its output
// appended to a log file, and stops it: the servers the test kit starts,
// the daemon the chaos test crashes and the subsyncd the demo runs.
package childproc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Proc is a started child process.
type Proc struct {
	// Cmd is the command as started.
	Cmd *exec.Cmd
	// LogPath is the file its output is appended to; "" for none.
	LogPath string

	done   chan struct{}
	err    error
	exitAt time.Time
}

// Start starts cmd with its stdout and stderr, where cmd leaves them nil,
// appended to logPath (unless ""). The caller sets cmd's Env, Dir and
// SysProcAttr.
func Start(cmd *exec.Cmd, logPath string) (*Proc, error) {
	if logPath != "" {
		logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open log: %w", err)
		}
		defer logFile.Close() // the child keeps its own descriptor
		if cmd.Stdout == nil {
			cmd.Stdout = logFile
		}
		if cmd.Stderr == nil {
			cmd.Stderr = logFile
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %s: %w", filepath.Base(cmd.Path), strings.Join(cmd.Args[1:], " "), err)
	}
	p := &Proc{Cmd: cmd, LogPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		p.exitAt = time.Now()
		close(p.done)
	}()
	return p, nil
}

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is what waiting for the process returned (nil for status 0); it is
// meaningful once Done is closed.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// ExitedAt is when the process was seen to exit; it is meaningful once
// Done is closed.
func (p *Proc) ExitedAt() time.Time {
	<-p.done
	return p.exitAt
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends sig and waits up to grace for the process to exit, then kills
// it. It returns an error when it had to kill the process or could not
// signal it, and nil when the process exited in time, however it exited
// (Err tells).
func (p *Proc) Stop(sig syscall.Signal, grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	if err := p.Cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", filepath.Base(p.Cmd.Path), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = p.Cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s did not exit within %s of %s; killed", filepath.Base(p.Cmd.Path), grace, sig)
}

// Tail returns the last n lines of the file at path, for failure messages.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
