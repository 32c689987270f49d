package db_test

import (
	"context"
	"testing"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/dbtest"
)

// runsDB opens a fresh, migrated database.
func runsDB(t *testing.T) *db.DB {
	t.Helper()
	d := dbtest.Open(t, db.Config{})
	return d
}

func TestLeaderLockIsExclusive(t *testing.T) {
	d := runsDB(t)
	other, err := db.Open(context.Background(), db.Config{URL: d.URL()}) // another replica
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()

	l, ok, err := d.TryLeaderLock(ctx, "job-a")
	if err != nil || !ok {
		t.Fatalf("first lock: %v %v", ok, err)
	}
	if err := l.Check(ctx); err != nil {
		t.Fatalf("check of a held lock: %v", err)
	}
	for _, c := range []struct {
		name string
		d    *db.DB
	}{{"same process", d}, {"other replica", other}} {
		t.Run(c.name, func(t *testing.T) {
			if _, ok, err := c.d.TryLeaderLock(ctx, "job-a"); err != nil || ok {
				t.Fatalf("second lock of job-a: ok %v err %v", ok, err)
			}
		})
	}
	lb, ok, err := other.TryLeaderLock(ctx, "job-b")
	if err != nil || !ok {
		t.Fatalf("another job's lock: %v %v", ok, err)
	}
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l2, ok, err := other.TryLeaderLock(ctx, "job-a")
	if err != nil || !ok {
		t.Fatalf("lock after release: %v %v", ok, err)
	}
	// The session dies (a database restart, a network cut): the lock goes
	// with it and Check says so.
	if _, err := d.X().Exec(`SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND classid = 7072 AND objsubid = 2 AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	if err := l2.Check(ctx); err == nil {
		t.Fatal("check passed on a terminated session")
	}
	_ = l2.Release(ctx) // fails; must not panic or pool a dead session
	l3, ok, err := d.TryLeaderLock(ctx, "job-a")
	if err != nil || !ok {
		t.Fatalf("lock after the holder died: %v %v", ok, err)
	}
	l3.Release(ctx)
}
