package db

import (
	"cmp"
	"context"
	"time"
)

// A transaction that has sent NOTIFY takes a database-wide lock at commit
// and holds it through its WAL flush, so such commits run one at a time.
// subsyncd therefore never notifies from the transactions that store or
// apply events: a Notifier sends one NOTIFY of its own, outside them, for
// any number of pokes in a short interval.

// Notifier coalesces wake-up notifications on one channel: after a Poke it
// sends one NOTIFY (an empty payload) in a statement of its own, then waits
// Every before it sends another, however often it is poked meanwhile.
type Notifier struct {
	d       *DB
	channel string
	every   time.Duration
	poke    chan struct{}
}

// NewNotifier returns a Notifier for channel; every defaults to 5 ms. Run
// sends the notifications.
func (d *DB) NewNotifier(channel string, every time.Duration) *Notifier {
	return &Notifier{d: d, channel: channel, every: cmp.Or(every, 5*time.Millisecond), poke: make(chan struct{}, 1)}
}

// Poke asks for a notification; it never blocks.
func (n *Notifier) Poke() {
	select {
	case n.poke <- struct{}{}:
	default:
	}
}

// Run sends the notifications asked for until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.poke:
		}
		n.d.notify(ctx, n.channel)
		t.Reset(n.every)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// notify sends one NOTIFY on channel in a statement of its own. A failure
// only delays other replicas until their next poll, so it is counted, not
// returned.
func (d *DB) notify(ctx context.Context, channel string) {
	_, err := d.x.ExecContext(ctx, `SELECT pg_notify($1, '')`, channel)
	_ = d.observe("notify", err)
}
