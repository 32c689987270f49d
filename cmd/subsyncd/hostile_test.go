package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// hostileCase is one kind of hostile input: how to send it, the answer it
// must get, what it may store.
type hostileCase struct {
	kind string
	// payload: run against the payload-mode daemon.
	payload bool
	// send performs the request(s) and returns the answer of the hostile
	// one and, when it is about one event, that event's id.
	send    func(t *testing.T, h *hostileEnv) (hostileAnswer, string)
	code    int
	status  string             // "status" of a 200 answer
	metrics map[string]float64 // expected increments of subsync_webhook_requests_total
	events  int                // expected new stripe_webhook_events rows
	subs    int                // expected new user_subscriptions rows
	// check proves what was stored; it returns the description for the table.
	check func(t *testing.T, h *hostileEnv, eventID string) string
}

// TestHostileInput sends a table of hostile or odd requests through a real
// serve and proves, for each, the answer and what was (not) stored. It
// logs one Markdown table row per kind, the table of docs/reliability.md.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	tol := "STRIPE_WEBHOOK_TOLERANCE=" + hostileTolerance.String()
	refetch := newHostileEnv(t, "refetch", tol)
	payload := newHostileEnv(t, "payload", tol)

	cases := slices.Concat(hostileRequestCases(), hostileEventCases())

	// The table of docs/reliability.md.
	var table strings.Builder
	table.WriteString("| kind | answer | stored |\n| --- | --- | --- |\n")
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			h := refetch
			if c.payload {
				h = payload
			}
			ev0, sub0 := h.counts(t)
			m0 := h.outcomes(t)
			ans, id := c.send(t, h)
			if ans.err != nil {
				t.Fatalf("transport error: %v", ans.err)
			}
			if ans.code != c.code {
				t.Fatalf("answer %v, want %d", ans, c.code)
			}
			if c.status != "" && !strings.Contains(ans.body, `"status":"`+c.status+`"`) {
				t.Fatalf("answer %v, want status %s", ans, c.status)
			}
			if c.code >= 400 && !strings.Contains(ans.body, "error") && c.code != 431 {
				t.Fatalf("answer %v has no error message", ans)
			}
			if id != "" && c.code == 200 {
				h.settled(t, id)
			}
			stored := c.check(t, h, id)
			ev1, sub1 := h.counts(t)
			if ev1-ev0 != c.events || sub1-sub0 != c.subs {
				t.Fatalf("stripe_webhook_events +%d, user_subscriptions +%d; want +%d, +%d", ev1-ev0, sub1-sub0, c.events, c.subs)
			}
			m1 := h.outcomes(t)
			for o, v := range m1 {
				if d := v - m0[o]; d != c.metrics[o] {
					t.Errorf("subsync_webhook_requests_total{outcome=%q} +%v, want +%v", o, d, c.metrics[o])
				}
			}
			fmt.Fprintf(&table, "| %s | %s | %s (events +%d, subscriptions +%d) |\n", c.kind, ans, stored, ev1-ev0, sub1-sub0)
		})
	}
	t.Logf("hostile input:\n%s", table.String())
}

// hostileNothing is the check of a case that must store nothing: the
// event, if the case is about one, is not in the inbox.
func hostileNothing(t *testing.T, h *hostileEnv, id string) string {
	if id != "" {
		if _, ok := h.event(t, id); ok {
			t.Errorf("event %s stored", id)
		}
	}
	return "nothing"
}
