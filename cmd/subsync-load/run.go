package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	_ "github.com/lib/pq"

	"github.com/subsync/subsync/internal/loadgen"
)

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("subsync-load", flag.ContinueOnError)
	cfg := loadgen.Config{}
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080/webhooks/stripe", "webhook endpoint")
	fs.StringVar(&cfg.Secret, "secret", "", "webhook signing secret (whsec_…)")
	fs.IntVar(&cfg.Events, "n", 2000, "events to send")
	fs.IntVar(&cfg.Clients, "c", 8, "concurrent keep-alive senders")
	fs.IntVar(&cfg.Subscriptions, "subscriptions", 500, "distinct subscriptions the events are about")
	fs.StringVar(&cfg.Price, "price", "price_load", "price id in the events")
	dbURL := fs.String("database-url", "", "when set, wait until every event is applied and report the time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.Secret == "" {
		return errors.New("-secret is required")
	}
	res, err := loadgen.Send(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "sent %d events with %d senders in %s: %.0f events/s, %d not answered 200\n",
		res.Events, res.Clients, res.Duration().Round(time.Millisecond), res.AckRate(), res.Non200)
	if res.FirstError != "" {
		fmt.Fprintf(out, "first failure: %s\n", res.FirstError)
	}
	fmt.Fprintf(out, "answer latency: %s\n", res.Latency)
	if *dbURL == "" {
		return nil
	}
	db, err := sql.Open("postgres", *dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	a, err := loadgen.WaitApplied(ctx, db, res, 5*time.Minute)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "applied %d (dead %d, ignored %d); all applied %s after the first request (%.0f events/s), %s after the last answer\n",
		a.Applied, a.Dead, a.Ignored, a.EndToEnd.Round(time.Millisecond), a.Rate(), a.Drain.Round(time.Millisecond))
	fmt.Fprintf(out, "stored → applied: p50 %.1f ms  p99 %.1f ms\n",
		a.StoredToApplied50.Seconds()*1000, a.StoredToApplied99.Seconds()*1000)
	return nil
}
