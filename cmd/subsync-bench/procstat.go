package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is the kernel's clock ticks per second (getconf CLK_TCK),
// the unit of utime and stime in /proc/<pid>/stat.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return float64(n)
		}
	}
	return 100
}

// procStat reads the parent pid and the CPU ticks (utime+stime) of pid.
func procStat(pid int) (ppid int, ticks uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no command", pid)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return ppid, ut + st, nil
}

// cpuUsage is CPU time used over one measured interval.
type cpuUsage struct {
	Client     time.Duration // subsyncd (or the pgbench client)
	Backends   time.Duration // Postgres backends of the measured database
	Background time.Duration // Postgres background processes (WAL writer, checkpointer, …), shared by the server
	Self       time.Duration // this process: the load generator (and the in-process Stripe fake, the samplers)
}

// Postgres is the server's share: backends and background processes.
func (u cpuUsage) Postgres() time.Duration { return u.Backends + u.Background }

// Total is everything measured.
func (u cpuUsage) Total() time.Duration { return u.Client + u.Postgres() }

// cpuSampler follows, every few tens of milliseconds, the CPU ticks of a
// client process and of the postmaster's children that work for one
// database (its backends and autovacuum workers) or for the whole server
// (background processes); backends of other databases and the pids in
// skip are left out. Sampling often keeps most of the time of backends
// that exit before the end.
type cpuSampler struct {
	postmaster, client int
	db                 string
	skip               map[int]bool
	hz                 float64

	mu         sync.Mutex
	base, last map[int]uint64
	kind       map[int]int // 0 client, 1 backend, 2 background
	selfBase   uint64      // this process's ticks at the baseline
	stopped    chan struct{}
	stopOnce   sync.Once
	done       chan struct{}
}

// startCPU takes the baseline and starts sampling. client may be 0.
func startCPU(postmaster, client int, db string, skip ...int) *cpuSampler {
	s := &cpuSampler{
		postmaster: postmaster, client: client, db: db, skip: map[int]bool{}, hz: clockTicks(),
		base: map[int]uint64{}, last: map[int]uint64{}, kind: map[int]int{},
		stopped: make(chan struct{}), done: make(chan struct{}),
	}
	for _, p := range skip {
		s.skip[p] = true
	}
	s.sample(true)
	_, s.selfBase, _ = procStat(os.Getpid())
	go func() {
		defer close(s.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stopped:
				return
			case <-t.C:
				s.sample(false)
			}
		}
	}()
	return s
}

// setClient adds a client process started after the baseline.
func (s *cpuSampler) setClient(pid int) {
	s.mu.Lock()
	s.client = pid
	s.mu.Unlock()
}

func (s *cpuSampler) sample(baseline bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != 0 {
		if _, t, err := procStat(s.client); err == nil {
			s.record(s.client, 0, t, baseline)
		}
	}
	if s.postmaster == 0 {
		return
	}
	for _, pid := range children(s.postmaster) {
		if s.skip[pid] || pid == s.client {
			continue
		}
		ppid, t, err := procStat(pid)
		if err != nil || ppid != s.postmaster {
			continue
		}
		k, ok := s.kind[pid]
		if !ok {
			k = s.classify(pid)
			s.kind[pid] = k
		}
		if k > 0 {
			s.record(pid, k, t, baseline)
		}
	}
}

// children lists the child processes of pid. It reads the kernel's list
// (/proc/<pid>/task/<pid>/children, one file, for a single-threaded
// process such as the postmaster) and, where there is none, every process
// of /proc, whose parent procStat then checks. Reading all of /proc every
// sample costs the load generator's process a third of its CPU on a
// machine with a hundred processes.
func children(pid int) []int {
	var pids []int
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
		return pids
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		if n, err := strconv.Atoi(filepath.Base(dir)); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

// classify says whether a postmaster child works for the measured
// database (1), for the whole server (2) or for another database (-1).
func (s *cpuSampler) classify(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return -1
	}
	title := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	words := strings.Fields(title)
	for _, w := range words {
		if w == s.db {
			return 1
		}
	}
	if strings.Contains(title, "(") || strings.Contains(title, "[local]") || strings.Contains(title, "autovacuum worker") ||
		strings.Contains(title, "parallel worker") {
		return -1 // a backend or worker of another database
	}
	return 2
}

func (s *cpuSampler) record(pid, kind int, ticks uint64, baseline bool) {
	s.kind[pid] = kind
	if _, ok := s.base[pid]; !ok {
		if baseline {
			s.base[pid] = ticks
		} else {
			s.base[pid] = 0 // started during the interval
		}
	}
	s.last[pid] = ticks
}

// stop takes a last sample and returns the usage since the baseline.
func (s *cpuSampler) stop() cpuUsage {
	s.stopOnce.Do(func() { close(s.stopped) })
	<-s.done
	s.sample(false)
	s.mu.Lock()
	defer s.mu.Unlock()
	var u cpuUsage
	if _, self, err := procStat(os.Getpid()); err == nil {
		u.Self = time.Duration(float64(self-min(self, s.selfBase)) / s.hz * float64(time.Second))
	}
	for pid, last := range s.last {
		d := time.Duration(float64(last-min(last, s.base[pid])) / s.hz * float64(time.Second))
		switch s.kind[pid] {
		case 0:
			u.Client += d
		case 1:
			u.Backends += d
		case 2:
			u.Background += d
		}
	}
	return u
}
