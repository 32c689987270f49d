package main

import (
	"fmt"
	"strings"
	"testing"
)

// hostileEventCases are well-formed, correctly signed events that are odd
// for what they say: a duplicate, a type not handled, a subscription,
// price or customer Stripe does not have as expected, huge metadata.
func hostileEventCases() []hostileCase {
	acc := map[string]float64{"accepted": 1}
	return []hostileCase{
		{
			kind: "duplicate delivery (same body twice)",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				sub := h.liveSub(t)
				id, body := h.subEvent(t, "customer.subscription.updated", sub.ID)
				if a := h.signed(t, body); a.code != 200 || !strings.Contains(a.body, "accepted") {
					t.Fatalf("first delivery: %v", a)
				}
				return h.signed(t, body), id
			},
			code: 200, status: "duplicate", metrics: map[string]float64{"accepted": 1, "duplicate": 1}, events: 1, subs: 1,
			check: hostileApplied("one event (applied), one row"),
		},
		{
			kind: "event type not handled (charge.succeeded)",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id := hostileID("evt_hostile_")
				return h.signed(t, hostileEvent(t, id, "charge.succeeded", map[string]any{"id": "ch_1", "object": "charge"})), id
			},
			code: 200, status: "ignored", metrics: map[string]float64{"ignored": 1}, events: 1,
			check: hostileEventIs("ignored", "event with status ignored, no row"),
		},
		{
			kind: "subscription that does not exist in Stripe",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id := hostileID("evt_hostile_")
				obj := map[string]any{"id": "sub_doesnotexist", "object": "subscription", "status": "active"}
				return h.signed(t, hostileEvent(t, id, "customer.subscription.updated", obj)), id
			},
			code: 200, status: "accepted", metrics: acc, events: 1,
			check: func(t *testing.T, h *hostileEnv, id string) string {
				ev := h.ignoredFor(t, id, "not found")
				if _, ok := h.row(t, "sub_doesnotexist"); ok {
					t.Fatal("a row was written")
				}
				return fmt.Sprintf("event ignored, last_error %q, no row", ev.LastError)
			},
		},
		{
			kind: "price that is not mapped (year × 1)",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				sub := h.subscribe(t, h.unmapped.ID, map[string]string{"user_id": "user-unmapped"}, nil)
				return h.sendSubEvent(t, "customer.subscription.created", sub.ID)
			},
			code: 200, status: "accepted", metrics: acc, events: 1, subs: 1,
			check: func(t *testing.T, h *hostileEnv, id string) string {
				r := h.appliedRow(t, id)
				if r.Plan != nil || r.Period != "annual" {
					t.Fatalf("plan %v period %s, want null/annual", r.Plan, r.Period)
				}
				return "row with plan_id null, billing_period annual (from the interval)"
			},
		},
		{
			kind:    "subscription with no items (payload mode, hand-made event)",
			payload: true,
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id := hostileID("evt_hostile_")
				obj := map[string]any{"id": hostileID("sub_noitems_"), "object": "subscription", "status": "active",
					"customer": "cus_x", "items": map[string]any{"object": "list", "data": []any{}}}
				return h.signed(t, hostileEvent(t, id, "customer.subscription.updated", obj)), id
			},
			code: 200, status: "accepted", metrics: acc, events: 1,
			check: func(t *testing.T, h *hostileEnv, id string) string {
				ev := h.ignoredFor(t, id, "no items")
				return fmt.Sprintf("event ignored, last_error %q, no row", ev.LastError)
			},
		},
		{
			kind: "customer deleted in Stripe before any delivery",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				sub := h.subscribe(t, h.mapped.ID, map[string]string{"user_id": "user-gone"}, nil)
				if err := h.fake.DeleteCustomer(sub.Customer.ID); err != nil {
					t.Fatal(err)
				}
				return h.sendSubEvent(t, "customer.subscription.deleted", sub.ID)
			},
			code: 200, status: "accepted", metrics: acc, events: 1, subs: 1,
			check: func(t *testing.T, h *hostileEnv, id string) string {
				r := h.appliedRow(t, id)
				if r.User != nil || r.Status != "canceled" {
					t.Fatalf("user %v status %s, want null/canceled", r.User, r.Status)
				}
				return "row canceled, user_id null (the deleted customer's metadata is not read)"
			},
		},
		{
			kind: "customer deleted in Stripe after the row was linked",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				sub := h.subscribe(t, h.mapped.ID, map[string]string{"user_id": "user-kept"}, nil)
				first, body := h.subEvent(t, "customer.subscription.created", sub.ID)
				if a := h.signed(t, body); a.code != 200 {
					t.Fatalf("first delivery: %v", a)
				}
				if ev := h.settled(t, first); ev.Status != "applied" {
					t.Fatalf("first event %s", ev.Status)
				}
				if err := h.fake.DeleteCustomer(sub.Customer.ID); err != nil {
					t.Fatal(err)
				}
				return h.sendSubEvent(t, "customer.subscription.deleted", sub.ID)
			},
			code: 200, status: "accepted", metrics: map[string]float64{"accepted": 2}, events: 2, subs: 1,
			check: func(t *testing.T, h *hostileEnv, id string) string {
				r := h.appliedRow(t, id)
				if r.User == nil || *r.User != "user-kept" || r.Status != "canceled" {
					t.Fatalf("user %v status %s, want user-kept/canceled", r.User, r.Status)
				}
				return "row canceled, user_id kept"
			},
		},
		{
			kind: "metadata user id of 10 KB",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				sub := h.subscribe(t, h.mapped.ID, nil, map[string]string{"user_id": strings.Repeat("u", 10<<10)})
				return h.sendSubEvent(t, "customer.subscription.created", sub.ID)
			},
			code: 200, status: "accepted", metrics: acc, events: 1, subs: 1,
			check: func(t *testing.T, h *hostileEnv, id string) string {
				r := h.appliedRow(t, id)
				if r.User != nil {
					t.Fatalf("user_id set to %d bytes", len(*r.User))
				}
				return "row stored, user_id null (values over 500 bytes are not ids)"
			},
		},
	}
}
