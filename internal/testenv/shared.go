package testenv

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The shared servers of a process. A variable names a server to use; else
// the default address is used when something answers there; else this
// process starts a throwaway server once and every test of the process
// shares it.
//
// Cleaning up: a throwaway shared server is stopped by StopShared when the
// caller has an end (the services runner of `make test`), and otherwise by
// the kernel when the process exits: it is started from a thread that lives
// as long as the process, with that thread's death signal set, in a process
// group of its own. Its directory, under the temporary directory and
// holding an owner file with the process id, is removed by the next start
// of a shared server once that process is gone.
var (
	sharedPG, sharedRedis shared

	// SUBSYNC_TEST_PG_ADDR and SUBSYNC_TEST_REDIS_ADDR override the default
	// addresses probed (127.0.0.1:1 forces a throwaway server).
	pgDefaultAddr    = func() string { return cmp.Or(os.Getenv("SUBSYNC_TEST_PG_ADDR"), "127.0.0.1:5432") }
	redisDefaultAddr = func() string { return cmp.Or(os.Getenv("SUBSYNC_TEST_REDIS_ADDR"), "127.0.0.1:6379") }
)

// shared is one server a process finds or starts once.
type shared struct {
	once sync.Once
	url  string
	srv  *server // nil unless this process started it
	err  error
}

func (s *shared) get(find func() (string, *server, error)) (string, error) {
	s.once.Do(func() { s.url, s.srv, s.err = find() })
	return s.url, s.err
}

// AdminDatabaseURL returns the URL of the Postgres server on which tests
// create their databases: TEST_DATABASE_URL when set; else the postgres
// database of 127.0.0.1:5432 when a server answers there; else a throwaway
// cluster this process starts (as the postgres user when root) and shares.
func AdminDatabaseURL() (string, error) {
	return sharedPG.get(func() (string, *server, error) {
		if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
			return u, nil, nil
		}
		u := "postgres://postgres@" + pgDefaultAddr() + "/postgres?sslmode=disable&connect_timeout=3"
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if db, err := openPostgres(ctx, u); err == nil {
			db.Close()
			return strings.TrimSuffix(u, "&connect_timeout=3"), nil, nil
		}
		srv, err := startShared("postgres", func(p string) (*server, error) { return newPostgresServer(p) })
		if err != nil {
			return "", nil, fmt.Errorf("no Postgres answers on %s and none could be started: %w", pgDefaultAddr(), err)
		}
		return postgresURL(srv.ports[0]), srv, nil
	})
}

// SharedRedisURL returns the URL of the Redis tests share: TEST_REDIS_URL
// when set; else 127.0.0.1:6379 when it answers PING; else a throwaway
// redis-server this process starts and shares.
func SharedRedisURL() (string, error) {
	return sharedRedis.get(func() (string, *server, error) {
		if u := os.Getenv("TEST_REDIS_URL"); u != "" {
			return u, nil, nil
		}
		if redisPing(redisDefaultAddr(), nil, 3*time.Second) == nil {
			return "redis://" + redisDefaultAddr() + "/0", nil, nil
		}
		srv, err := startShared("redis", newRedisServer)
		if err != nil {
			return "", nil, fmt.Errorf("no Redis answers on %s and none could be started: %w", redisDefaultAddr(), err)
		}
		return "redis://" + redisHostPort(srv.ports[0]) + "/0", srv, nil
	})
}

// StopShared stops the throwaway servers this process started, if any, and
// removes their directories.
func StopShared() error {
	var errs []error
	for _, s := range []*shared{&sharedPG, &sharedRedis} {
		if s.srv == nil {
			continue
		}
		errs = append(errs, s.srv.stopErr(s.srv.stopSig), os.RemoveAll(s.srv.dir))
	}
	return errors.Join(errs...)
}

const sharedPrefix = "subsync-shared-"

// startShared removes the directories of shared servers whose process is
// gone, then creates a server with newServer and starts it from a thread
// locked for the rest of the process, so that the server's death signal
// comes when the process ends and not when some thread does.
func startShared(kind string, newServer func(pattern string) (*server, error)) (*server, error) {
	removeStaleShared()
	srv, err := newServer(sharedPrefix + kind + "-*")
	if err == nil {
		err = os.WriteFile(filepath.Join(srv.dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644)
	}
	if err == nil {
		done := make(chan error)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives while the process does
			done <- srv.launchErr()
			select {}
		}()
		err = <-done
	}
	if err != nil && srv != nil {
		os.RemoveAll(srv.dir)
	}
	return srv, err
}

// removeStaleShared removes the directories of shared servers whose owner
// process no longer exists.
func removeStaleShared() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), sharedPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			os.RemoveAll(dir)
		}
	}
}
