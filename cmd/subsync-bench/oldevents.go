package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"time"

	"github.com/subsync/subsync/internal/loadgen"
)

// fillOldEvents pre-fills d's inbox with n events received over the past
// 60 to 14 days, every one processed (nine in ten applied, one in ten
// ignored), each with a realistic payload of its own id, in one INSERT …
// SELECT generate_series, then vacuums and analyzes the table so the
// measured run starts from a settled table.
func fillOldEvents(ctx context.Context, d *benchDB, n int, stderr io.Writer) error {
	if n <= 0 {
		return nil
	}
	start := time.Now()
	db, err := sql.Open("postgres", d.url)
	if err != nil {
		return err
	}
	defer db.Close()
	payload := loadgen.Event("old", 0, "sub_old_0", "price_load", time.Now().Add(-30*24*time.Hour))
	_, err = db.ExecContext(ctx, `
		INSERT INTO stripe_webhook_events
			(id, type, api_version, stripe_created_at, livemode, source, status, attempts,
			 received_at, processed_at, payload)
		SELECT 'evt_old_' || g, 'customer.subscription.updated', '2023-10-16', t - interval '1 second', false,
			'webhook', CASE WHEN g % 10 = 0 THEN 'ignored' ELSE 'applied' END, 1,
			t, t + interval '20 milliseconds',
			jsonb_set(jsonb_set($1::jsonb, '{id}', to_jsonb('evt_old_' || g)),
				'{data,object,id}', to_jsonb('sub_old_' || (g % 5000)))
		FROM generate_series(1, $2::int) AS g,
			LATERAL (SELECT now() - interval '60 days' + g * (interval '46 days' / $2::int)) AS x(t)`,
		string(payload), n)
	if err != nil {
		return fmt.Errorf("pre-fill %d old events: %w", n, err)
	}
	if _, err := db.ExecContext(ctx, `VACUUM (ANALYZE) stripe_webhook_events`); err != nil {
		return fmt.Errorf("vacuum after the pre-fill: %w", err)
	}
	fmt.Fprintf(stderr, "pre-filled %s with %d old events in %v\n", d.name, n, time.Since(start).Round(time.Millisecond))
	return nil
}
