package chaos

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/redis/go-redis/v9"
)

// seeder plays the application's cache: it sets users' features:{user_id}
// keys, and remembers, for each user, the feature-relevant state of their
// rows as read right after the key was last set. A row read after the SET
// is sound: whatever changes after that read commits after the SET, so its
// invalidation must delete the key.
type seeder struct {
	rdb     *redis.Client
	x       *sqlx.DB
	seen    map[string]string // user → features read after the last SET
	pending map[string]bool   // users SET whose read is still to do
	rounds  int               // seeding rounds
	keys    int               // keys set
	failed  int               // rounds Redis refused
}

func newSeeder(rdb *redis.Client, x *sqlx.DB) *seeder {
	return &seeder{rdb: rdb, x: x, seen: map[string]string{}, pending: map[string]bool{}}
}

func cacheKey(user string) string { return "features:" + user }

// seed sets the keys of users, then reads their rows (now, or at a later
// call when the database does not answer). Users whose SET may have reached
// Redis are read again even when the pipeline failed.
func (s *seeder) seed(ctx context.Context, users []string) {
	if len(users) == 0 {
		return
	}
	s.rounds++
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := s.rdb.Pipelined(rctx, func(p redis.Pipeliner) error {
		for _, u := range users {
			p.Set(rctx, cacheKey(u), `{"seeded":true}`, 0)
		}
		return nil
	})
	if err != nil {
		s.failed++
	} else {
		s.keys += len(users)
	}
	for _, u := range users {
		s.pending[u] = true
	}
	s.read(ctx)
}

// read completes the pending reads; it reports whether none is left.
func (s *seeder) read(ctx context.Context) bool {
	if len(s.pending) == 0 {
		return true
	}
	users := make([]string, 0, len(s.pending))
	for u := range s.pending {
		users = append(users, u)
	}
	got, err := features(ctx, s.x, users)
	if err != nil {
		return false
	}
	for _, u := range users {
		s.seen[u] = got[u]
		delete(s.pending, u)
	}
	return true
}

// features reads the feature-relevant fields of the rows of each user
// (plan, period, status per subscription); a user without rows maps to "".
func features(ctx context.Context, x *sqlx.DB, users []string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var rows []struct {
		User     string `db:"user_id"`
		Features string `db:"features"`
	}
	err := x.SelectContext(ctx, &rows, `
		SELECT user_id, string_agg(stripe_subscription_id || ':' || coalesce(plan_id, '-') || ':' ||
			billing_period || ':' || status, ';' ORDER BY stripe_subscription_id) AS features
		FROM user_subscriptions WHERE user_id = ANY($1) GROUP BY user_id`, pq.Array(users))
	if err != nil {
		return nil, fmt.Errorf("read features: %w", err)
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.User] = r.Features
	}
	return out, nil
}

// cacheCheck is the state of the seeded keys against the final rows.
type cacheCheck struct {
	Changed int      // users whose features changed after their last seeding
	Stale   []string // of those, users whose key is still in Redis
	Kept    int      // users whose features did not change and whose key remains
}

// check compares each seeded user's final features with those read at the
// last seeding: a user whose features changed must have lost their key.
func (s *seeder) check(ctx context.Context) (cacheCheck, error) {
	var c cacheCheck
	if !s.read(ctx) {
		return c, fmt.Errorf("seeding reads still pending")
	}
	users := make([]string, 0, len(s.seen))
	for u := range s.seen {
		users = append(users, u)
	}
	final, err := features(ctx, s.x, users)
	if err != nil {
		return c, err
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	exists := make(map[string]*redis.IntCmd, len(users))
	if _, err := s.rdb.Pipelined(rctx, func(p redis.Pipeliner) error {
		for _, u := range users {
			exists[u] = p.Exists(rctx, cacheKey(u))
		}
		return nil
	}); err != nil {
		return c, fmt.Errorf("redis: %w", err)
	}
	for _, u := range users {
		present := exists[u].Val() == 1
		if final[u] != s.seen[u] {
			c.Changed++
			if present {
				c.Stale = append(c.Stale, fmt.Sprintf("%s (seeded at %q, now %q)", u, s.seen[u], final[u]))
			}
		} else if present {
			c.Kept++
		}
	}
	return c, nil
}
