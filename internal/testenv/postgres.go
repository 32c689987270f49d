package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// pgBinGlob is where Debian's postgresql package puts the server binaries.
const pgBinGlob = "/usr/lib/postgresql/*/bin"

// Postgres is a throwaway Postgres cluster owned by one test: trust
// authentication, superuser postgres, listening on 127.0.0.1 only, fsync off
// for speed (a commit survives Kill, a process crash, though not a machine
// crash). It is stopped and removed when the test ends. Stop is Postgres's
// fast shutdown (sessions are disconnected, no data is lost); Start brings
// the cluster back on the same port and data directory.
type Postgres struct {
	control
}

// StartPostgres initialises a cluster in a fresh temporary directory, starts
// it on a free port (as the postgres user when the test runs as root, since
// Postgres refuses root) and waits until it accepts connections. The server
// binaries are looked up in PATH, then in /usr/lib/postgresql/*/bin.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	return &Postgres{startControl(t, newPostgresServer, "subsync-pg-*")}
}

// newPostgresServer initialises a cluster in a new directory named after
// pattern and returns its server, not started yet. On an error after the
// directory exists it returns the server too, for its cleanup.
func newPostgresServer(pattern string) (*server, error) {
	initdb, postgres, err := postgresBins()
	if err != nil {
		return nil, fmt.Errorf("%w\ninstall the Debian package %s (apt-get install -y %s)",
			err, PostgresPackage, PostgresPackage)
	}
	cred, err := serviceUser("postgres")
	if err != nil {
		return nil, fmt.Errorf("run Postgres as a non-root user: %w", err)
	}
	dir, err := makeServerDir(pattern, cred)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	env := envWithout([]string{"PG", "LC_", "LANG="}, "LC_ALL=C")
	srv := &server{
		name:   "postgres",
		bin:    postgres,
		nports: 1,
		args: func(ports []int) []string {
			return []string{
				"-D", data,
				"-p", strconv.Itoa(ports[0]),
				"-k", dir,
				"-c", "listen_addresses=127.0.0.1",
				"-c", "fsync=off",
				"-c", "full_page_writes=off",
				"-c", "shared_buffers=32MB",
				"-c", "max_connections=200",
			}
		},
		ready: func(ports []int) error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			db, err := openPostgres(ctx, postgresURL(ports[0])+"&connect_timeout=2")
			if err != nil {
				return err
			}
			return db.Close()
		},
		env:      env,
		dir:      dir,
		cred:     cred,
		stopSig:  syscall.SIGINT,  // fast shutdown
		killSig:  syscall.SIGQUIT, // immediate shutdown, as after a crash
		deathSig: syscall.SIGQUIT,
	}
	cmd := exec.Command(initdb, "-D", data, "-U", "postgres", "--auth=trust",
		"--no-locale", "-E", "UTF8", "--no-sync")
	cmd.Dir, cmd.Env = dir, env // initdb needs a working directory it can read
	cmd.SysProcAttr = sysProcAttr(cred, syscall.SIGKILL)
	if out, err := cmd.CombinedOutput(); err != nil {
		return srv, fmt.Errorf("initdb %s: %w\n%s", data, err, out)
	}
	return srv, nil
}

// URL returns the URL of the cluster's postgres database as superuser
// postgres, the same across Stop and Start.
func (p *Postgres) URL() string {
	return postgresURL(p.srv.port(0))
}

// Kill stops the server the way a crash would (immediate shutdown: the next
// start runs crash recovery) and waits for it to exit.
func (p *Postgres) Kill(t testing.TB) {
	t.Helper()
	p.srv.stop(t, p.srv.killSig)
}

// Restart stops the server (fast shutdown) and starts it again.
func (p *Postgres) Restart(t testing.TB) {
	t.Helper()
	p.Stop(t)
	p.Start(t)
}

func postgresURL(port int) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
}

// postgresBins finds initdb and the postgres server next to it.
func postgresBins() (initdb, postgres string, err error) {
	initdb, err = lookBin("initdb", pgBinGlob)
	if err != nil {
		return "", "", fmt.Errorf("postgres server binaries: %w", err)
	}
	if real, err := filepath.EvalSymlinks(initdb); err == nil {
		candidate := filepath.Join(filepath.Dir(real), "postgres")
		if _, err := os.Stat(candidate); err == nil {
			return initdb, candidate, nil
		}
	}
	postgres, err = lookBin("postgres", pgBinGlob)
	if err != nil {
		return "", "", fmt.Errorf("postgres server binaries: %w", err)
	}
	return initdb, postgres, nil
}
