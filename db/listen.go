package db

import (
	"context"
	"log/slog"
	"time"

	"github.com/lib/pq"
)

// InboxChannel is notified after events are stored in stripe_webhook_events
// (by a Notifier for webhooks, by InsertEvents for catch-up), so every
// replica's applier wakes at once.
const InboxChannel = "subsync_inbox"

// Listen calls fn for every notification on channel, and once after each
// (re)connection (anything may have been missed meanwhile), until ctx ends.
// It reconnects by itself when the connection drops.
func (d *DB) Listen(ctx context.Context, channel string, log *slog.Logger, fn func(payload string)) error {
	l := pq.NewListener(d.url, 100*time.Millisecond, 10*time.Second, func(ev pq.ListenerEventType, err error) {
		if err != nil && log != nil {
			log.Warn("database listener", "channel", channel, "err", redactErr(err, d.url))
		}
	})
	defer l.Close()
	if err := l.Listen(channel); err != nil {
		return d.observe("listen", err)
	}
	fn("")
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-l.Notify:
			if n == nil { // reconnected: notifications may have been lost
				fn("")
				continue
			}
			fn(n.Extra)
		case <-ping.C:
			go l.Ping()
		}
	}
}
