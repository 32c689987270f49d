package loadgen_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/subsync/subsync/internal/loadgen"
)

// Send delivers every event once, signed, over keep-alive connections
// that survive the server closing them, and counts what was not answered
// 200.
func TestSendDeliversEveryEventSigned(t *testing.T) {
	const secret = "whsec_test"
	var (
		mu    sync.Mutex
		seen  = map[string]int{}
		conns = map[string]bool{}
		n     int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
			return
		}
		if r.Method != http.MethodPost || r.URL.Path != "/webhooks/stripe" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request %s %s %q", r.Method, r.URL, r.Header.Get("Content-Type"))
		}
		if err := webhook.ValidatePayload(body, r.Header.Get("Stripe-Signature"), secret); err != nil {
			t.Errorf("signature: %v", err)
		}
		var ev struct{ ID string }
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("body: %v", err)
		}
		mu.Lock()
		seen[ev.ID]++
		conns[r.RemoteAddr] = true
		n++
		i := n
		mu.Unlock()
		switch {
		case strings.HasSuffix(ev.ID, "_13"):
			http.Error(w, "no", http.StatusInternalServerError)
		case i%7 == 0:
			w.Header().Set("Connection", "close") // the next request needs a new connection
		}
	}))
	defer srv.Close()
	res, err := loadgen.Send(context.Background(), loadgen.Config{
		URL: srv.URL + "/webhooks/stripe", Secret: secret, Events: 60, Clients: 3, Subscriptions: 5, Run: "t",
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Non200 != 1 || !strings.Contains(res.FirstError, "evt_loadt_13: 500") {
		t.Errorf("not answered 200: %d (%s); want evt_loadt_13 only", res.Non200, res.FirstError)
	}
	for i := range 60 {
		if id := loadgen.EventID("t", i); seen[id] != 1 {
			t.Errorf("%s delivered %d times", id, seen[id])
		}
	}
	if len(conns) < 4 || len(conns) > 60/7+3 {
		t.Errorf("%d connections for 3 senders and a close every 7 requests", len(conns))
	}
	if res.Latency.Max <= 0 || res.LastAck.Before(res.Start) {
		t.Errorf("result %+v", res)
	}
}
