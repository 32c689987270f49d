package chaos

import (
	"cmp"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/internal/testenv"
)

// Fault kinds; faultRotation gives their order.
const (
	faultPostgresRestart = "postgres restart"    // fast shutdown, start at once
	faultDaemonKill      = "daemon SIGKILL"      // down for a while, started again
	faultRedisOutage     = "redis outage"        // stopped for a while (its keys are lost)
	faultPostgresCrash   = "postgres crash"      // immediate shutdown, down for a while
	faultPostgresAndKill = "daemon SIGKILL + pg" // SIGKILL, Postgres restarted while it is down
)

var faultRotation = []string{faultDaemonKill, faultPostgresAndKill, faultRedisOutage, faultPostgresRestart, faultPostgresCrash, faultDaemonKill}

// minOutage is the shortest outage of each kind: long enough for clients'
// own retries (database/sql, go-redis, whose pipeline the cache worker
// bounds at 5s) to give up, so that the daemon's recovery is what is
// tested.
var minOutage = map[string]time.Duration{faultRedisOutage: 8 * time.Second}

const defaultMinOutage = 3 * time.Second

// conflicts tells whether an outage of kind open must end before a fault
// of kind starting begins: the daemon cannot start while Postgres is down,
// and faults of one service do not overlap. A Redis outage overlaps the
// others.
func conflicts(open, starting string) bool {
	return (open == faultRedisOutage) == (starting == faultRedisOutage)
}

// stripeFaults are the API faults in force during the middle of the changes.
var stripeFaults = stripefake.Faults{Latency: 5 * time.Millisecond, ErrorRate: 0.05, RateLimitRate: 0.05}

// services are the processes the faults hit.
type services struct {
	pg     *testenv.Postgres
	redis  *testenv.Redis
	daemon *daemon
	// reseed is called when Redis comes back, empty.
	reseed func()
}

// faultPlan spreads n faults evenly over the changes. An outage lasts half
// the gap between two faults and at least its minOutage, or until a fault
// it conflicts with starts.
type faultPlan struct {
	starts map[int]string           // change index → fault starting
	span   int                      // changes an outage lasts
	counts map[string]int           // faults injected, by kind
	open   []outage                 // outages in progress
	down   map[string]time.Duration // outage time, by kind
}

type outage struct {
	kind  string
	until int // change index
	since time.Time
}

func newFaultPlan(changes, n int) *faultPlan {
	p := &faultPlan{starts: map[int]string{}, counts: map[string]int{}, down: map[string]time.Duration{}}
	p.span = max(1, changes/(n+1)/2)
	for k := range n {
		p.starts[(k+1)*changes/(n+1)] = faultRotation[k%len(faultRotation)]
	}
	return p
}

// step injects the faults due at change i: it ends the outages that are
// over or conflict with the fault starting, then starts that fault.
func (p *faultPlan) step(t *testing.T, i int, s *services) {
	t.Helper()
	kind, starting := p.starts[i]
	for k := 0; k < len(p.open); {
		o := p.open[k]
		over := i >= o.until && time.Since(o.since) >= cmp.Or(minOutage[o.kind], defaultMinOutage)
		if over || (starting && conflicts(o.kind, kind)) {
			p.end(t, k, s)
			continue
		}
		k++
	}
	if !starting {
		return
	}
	p.counts[kind]++
	t.Logf("chaos: %s change %d: %s", time.Now().Format("15:04:05.000"), i, kind)
	switch kind {
	case faultPostgresRestart:
		s.pg.Restart(t)
		return
	case faultDaemonKill:
		s.daemon.kill(t)
	case faultRedisOutage:
		s.redis.Stop(t)
	case faultPostgresCrash:
		s.pg.Kill(t)
	case faultPostgresAndKill:
		s.daemon.kill(t)
		s.pg.Kill(t)
		s.pg.Start(t)
	}
	p.open = append(p.open, outage{kind: kind, until: i + p.span, since: time.Now()})
}

// end ends the outage open[k].
func (p *faultPlan) end(t *testing.T, k int, s *services) {
	t.Helper()
	o := p.open[k]
	p.open = append(p.open[:k], p.open[k+1:]...)
	switch o.kind {
	case faultDaemonKill, faultPostgresAndKill:
		s.daemon.start(t)
	case faultRedisOutage:
		s.redis.Start(t)
		s.reseed()
	case faultPostgresCrash:
		s.pg.Start(t)
	}
	p.down[o.kind] += time.Since(o.since)
	t.Logf("chaos: %s %s over after %s", time.Now().Format("15:04:05.000"), o.kind, time.Since(o.since).Round(time.Millisecond))
}

// finish ends every outage still in progress, Postgres first.
func (p *faultPlan) finish(t *testing.T, s *services) {
	t.Helper()
	for k, o := range p.open {
		if o.kind == faultPostgresCrash {
			p.end(t, k, s)
			break
		}
	}
	for len(p.open) > 0 {
		p.end(t, 0, s)
	}
}

// deliverer runs DeliverAll rounds in the background, like Stripe's
// webhook sender, and adds up their figures.
type deliverer struct {
	fake   *stripefake.Server
	opts   stripefake.DeliverOptions
	mu     sync.Mutex
	total  stripefake.DeliverStats
	rounds int
	cancel context.CancelFunc
	done   chan struct{}
}

func startDeliverer(fake *stripefake.Server, opts stripefake.DeliverOptions, every time.Duration) *deliverer {
	ctx, cancel := context.WithCancel(context.Background())
	d := &deliverer{fake: fake, opts: opts, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		for ctx.Err() == nil {
			st, _ := fake.DeliverAll(ctx, opts)
			d.add(st)
			select {
			case <-ctx.Done():
			case <-time.After(every):
			}
		}
	}()
	return d
}

func (d *deliverer) add(st stripefake.DeliverStats) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rounds++
	d.total.Sent += st.Sent
	d.total.Delivered += st.Delivered
	d.total.Duplicates += st.Duplicates
	d.total.Dropped += st.Dropped
	d.total.Retries += st.Retries
	d.total.Non2xx += st.Non2xx
	d.total.Errors += st.Errors
	d.total.Failed += st.Failed
}

// stop ends the background rounds and waits for the one in flight.
func (d *deliverer) stop() {
	d.cancel()
	<-d.done
}

func (d *deliverer) stats() (stripefake.DeliverStats, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.total, d.rounds
}
