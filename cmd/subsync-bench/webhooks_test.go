package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/subsync/subsync/internal/testenv"
)

// TestWebhooksMode runs the webhooks mode on tiny cases against the test
// Postgres server and a subsyncd built from this tree, and checks the
// report's structure and counts; the figures themselves are not judged.
func TestWebhooksMode(t *testing.T) {
	testenv.DatabaseURL(t) // fails loudly when the server does not answer
	bin := testenv.BuildSubsyncd(t)
	var stdout, stderr bytes.Buffer
	results, err := runWebhooks(context.Background(), []string{
		"-subsyncd", bin, "-cases", "default,refetch", "-n", "200", "-c", "4", "-subscriptions", "20",
		"-refetch-n", "20", "-refetch-c", "4", "-refetch-latency", "10ms", "-old-events", "2000",
	}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("webhooks: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if len(results) != 2 || results[0].name != "default" || results[1].name != "refetch" {
		t.Fatalf("got %d results, want default then refetch:\n%s", len(results), stdout.String())
	}
	for _, r := range results {
		want := map[string]int{"default": 200, "refetch": 20}[r.name]
		if r.sent.Events != want || r.sent.Non200 != 0 {
			t.Errorf("%s: sent %d events, %d not answered 200 (%s); want %d, 0", r.name, r.sent.Events,
				r.sent.Non200, r.sent.FirstError, want)
		}
		if a := r.applied; a.Stored != want || a.Applied != want || a.Dead != 0 || a.Ignored != 0 {
			t.Errorf("%s: stored %d, applied %d, dead %d, ignored %d; want every one of %d applied",
				r.name, a.Stored, a.Applied, a.Dead, a.Ignored, want)
		}
		if r.applied.Rate() <= 0 || r.sent.AckRate() <= 0 || r.sent.Latency.Max <= 0 {
			t.Errorf("%s: rates %.1f applied/s, %.1f ack/s, max latency %v; want them positive",
				r.name, r.applied.Rate(), r.sent.AckRate(), r.sent.Latency.Max)
		}
		if r.cpu.Total() <= 0 || r.walBytes <= 0 {
			t.Errorf("%s: CPU %v, WAL %d bytes; want both measured", r.name, r.cpu.Total(), r.walBytes)
		}
		if r.oldEvents != 2000 {
			t.Errorf("%s: %d old events, want 2000", r.name, r.oldEvents)
		}
	}
	def, ref := results[0], results[1]
	if def.pg == nil || def.pg.Transactions != 200 || def.pg.Failed != 0 || def.pg.TPS <= 0 || def.ratio() <= 0 {
		t.Errorf("default: pgbench %+v, ratio %.2f; want 200 transactions, none failed, a positive ratio", def.pg, def.ratio())
	}
	if ref.pg != nil || ref.refetches < 20 || ref.ceilingShare() <= 0 {
		t.Errorf("refetch: pgbench %v, %d fetches, %.2f of the ceiling; want no pgbench, at least 20 fetches",
			ref.pg, ref.refetches, ref.ceilingShare())
	}
	out := stdout.String()
	for _, s := range []string{"== default (run 1)", "== refetch (run 1)", "ratio applied end to end / pgbench",
		"applied/pgbench", "\\set sub random(1, :subs)", "% of 100/s"} {
		if !strings.Contains(out, s) {
			t.Errorf("report lacks %q:\n%s", s, out)
		}
	}
	if n := strings.Count(out, "\ndefault "); n != 1 {
		t.Errorf("table has %d default rows, want 1:\n%s", n, out)
	}
}
