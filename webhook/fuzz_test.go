package webhook_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/reconcile"
)

// FuzzHandler sends arbitrary bodies to the handler on a real database.
// When sign is true the body is signed with the configured secret, so the
// fuzzer reaches decoding and storage; otherwise the fuzzed header is sent
// as Stripe-Signature. Whatever comes in, the answer is 200, 400 or 413
// (never a 5xx with the database up), a 200 means the event is stored, and
// a 400 or 413 changes nothing.
//
// The handler is called directly rather than over HTTP so that headers a
// client would refuse to send (control characters, say) reach it too.
func FuzzHandler(f *testing.F) {
	for _, name := range []string{fileSubUpdated, fileInvoicePaid, fileChargeOK, fileCreatedBasil} {
		body := readTestdata(f, name)
		f.Add(body, true, "")
		f.Add(body, false, "")
		f.Add(body, false, signature(body, testNow, secretOther))
	}
	sub := readTestdata(f, fileSubUpdated)
	f.Add(sub, false, signature(sub, testNow, secretA)) // valid, through the header
	f.Add(sub, false, fmt.Sprintf("t=%d,", testNow.Unix())+signature(sub, testNow.Add(-10*time.Minute), secretA))
	f.Add(sub, false, "t=,v1=")
	f.Add(sub, false, "t=9223372036854775807,v1=00")
	for _, body := range []string{
		``,
		`[]`,
		`null`,
		`{}`,
		`{"id":"evt_min","type":"invoice.paid","created":1,"data":{"object":{}}}`,
		`{"id":"evt_min","type":"invoice.paid","created":1,"data":{"object":{"subscription":{"id":"sub_x"}}}}`,
		`{"id":"evt_nul","type":"charge.succeeded","created":1,"data":{"object":{"a":"\u0000"}}}`,
		`{"id":"evt_sur","type":"charge.succeeded","created":1,"data":{"object":{"a":"\ud800"}}}`,
		`{"id":"evt_utf","type":"charge.succeeded","created":1,"data":{"object":{"a":"` + "\xff\xfe" + `"}}}`,
		`{"id":"evt_big","type":"charge.succeeded","created":9223372036854775807,"data":{"object":{}}}`,
		`{"id":"evt_num","type":"charge.succeeded","created":1,"data":{"object":{}},"n":1e999999}`,
		`{"id":"evt_dup","id":"ch_1","type":"charge.succeeded","created":1,"data":{"object":{}}}`,
		`{"id":"evt_` + strings.Repeat("é", 125) + `","type":"x","created":1,"data":{"object":{}}}`,
		`{"id":"evt_sub","type":"customer.subscription.updated","created":1,"data":{"object":{"object":"subscription","id":"sub_` + strings.Repeat("é", 126) + `"}}}`,
		`{"id":"evt_deep","type":"x","created":1,"data":{"object":{"a":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}}}`,
	} {
		f.Add([]byte(body), true, "")
	}

	// One database per fuzz process, created before the inputs run.
	fx := newFixture(f, fixtureConfig{})
	ctx := f.Context()

	f.Fuzz(func(t *testing.T, body []byte, sign bool, header string) {
		if sign {
			header = signature(body, testNow, secretA)
		}
		// The event the body claims to be, as the handler decodes it.
		var ev struct{ id, typ string }
		if e, err := reconcile.DecodeEvent(body); err == nil {
			ev.id, ev.typ = e.ID, string(e.Type)
		}
		rowsBefore := fx.rowCount(t)
		notifiedBefore := fx.notify.Load()
		var prev *db.EventRow
		if ev.id != "" {
			if r, err := fx.check.GetEvent(ctx, ev.id); err == nil {
				prev = &r
			} else if !errors.Is(err, db.ErrNotFound) {
				t.Fatalf("look up %q: %v", ev.id, err)
			}
		}

		req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(body))
		if header != "" {
			req.Header["Stripe-Signature"] = []string{header}
		}
		rec := httptest.NewRecorder()
		fx.handler.ServeHTTP(rec, req)

		var answer map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
			t.Fatalf("answer %d %q is not a JSON object of strings: %v", rec.Code, rec.Body, err)
		}
		rowsAfter := fx.rowCount(t)
		notified := fx.notify.Load() - notifiedBefore
		switch rec.Code {
		case http.StatusOK:
			if ev.id == "" {
				t.Fatalf("200 %v for a body that is not an event", answer)
			}
			stored := fx.event(t, ev.id)
			switch status := answer["status"]; status {
			case "accepted", "ignored":
				if prev != nil || rowsAfter != rowsBefore+1 {
					t.Fatalf("%s, but rows %d → %d (stored before: %v)", status, rowsBefore, rowsAfter, prev != nil)
				}
				if stored.Type != ev.typ || stored.Source != reconcile.SourceWebhook {
					t.Fatalf("stored type %q source %q, want %q webhook", stored.Type, stored.Source, ev.typ)
				}
				wantStatus, wantNotify := reconcile.StatusPending, int64(1)
				if status == "ignored" {
					wantStatus, wantNotify = reconcile.StatusIgnored, 0
				}
				if stored.Status != wantStatus || notified != wantNotify {
					t.Fatalf("%s: stored status %q, Notify called %d times", status, stored.Status, notified)
				}
			case "duplicate":
				if prev == nil {
					t.Fatalf("duplicate of %q, which was not stored before", ev.id)
				}
				assertUnchanged(t, *prev, stored)
				if rowsAfter != rowsBefore || notified != 0 {
					t.Fatalf("duplicate: rows %d → %d, Notify called %d times", rowsBefore, rowsAfter, notified)
				}
			default:
				t.Fatalf("200 with body %v", answer)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if answer["error"] == "" {
				t.Fatalf("%d without an error message: %v", rec.Code, answer)
			}
			if rowsAfter != rowsBefore || notified != 0 {
				t.Fatalf("%d %v, but rows %d → %d and Notify called %d times", rec.Code, answer, rowsBefore, rowsAfter, notified)
			}
			if prev != nil {
				assertUnchanged(t, *prev, fx.event(t, ev.id))
			}
		default:
			t.Fatalf("status %d (%v) with the database up", rec.Code, answer)
		}
	})
}

// assertUnchanged fails if a stored event changed.
func assertUnchanged(t *testing.T, before, after db.EventRow) {
	t.Helper()
	if !bytes.Equal(before.Payload, after.Payload) || before.Type != after.Type || before.Status != after.Status ||
		!before.ReceivedAt.Equal(after.ReceivedAt) || before.Attempts != after.Attempts {
		t.Fatalf("stored event %s changed:\nbefore %+v\nafter  %+v", before.ID, before, after)
	}
}
