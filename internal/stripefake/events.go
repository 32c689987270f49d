package stripefake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/stripe/stripe-go/v76"
)

// eventRetention is how long Stripe lists and answers events: 30 days.
const eventRetention = 30 * 24 * 60 * 60

// reqInfo tells which API request caused a change; zero for helpers, which
// stand for Stripe's own automatic changes (request id null).
type reqInfo struct {
	id, idempotencyKey string
}

// event is a stored event: its object snapshot is kept in the canonical
// (2023-10-16) shape and rendered for the version asked at read time.
type event struct {
	id         string
	typ        string
	created    int64
	apiVersion string
	kind       string          // object kind of data.object: subscription, invoice, ...
	object     json.RawMessage // snapshot at creation
	previous   json.RawMessage // data.previous_attributes, or nil
	request    reqInfo
	pending    map[string]bool // endpoint id → not delivered yet
}

func (e *event) sortKey() (int64, string) { return e.created, e.id }

type eventRequestJSON struct {
	ID             *string `json:"id"`
	IdempotencyKey *string `json:"idempotency_key"`
}

type eventDataJSON struct {
	Object             json.RawMessage `json:"object"`
	PreviousAttributes json.RawMessage `json:"previous_attributes,omitempty"`
}

type eventJSON struct {
	ID              string           `json:"id"`
	Object          string           `json:"object"`
	Account         any              `json:"account,omitempty"`
	APIVersion      string           `json:"api_version"`
	Created         int64            `json:"created"`
	Data            eventDataJSON    `json:"data"`
	Livemode        bool             `json:"livemode"`
	PendingWebhooks int              `json:"pending_webhooks"`
	Request         eventRequestJSON `json:"request"`
	Type            string           `json:"type"`
}

// emitLocked records an event about an object snapshot; callers hold mu for
// writing. The endpoints enabled for its type at this moment owe it a
// delivery.
func (s *Server) emitLocked(typ, kind string, object, previous []byte, rq reqInfo) *event {
	e := &event{
		id:         s.newIDLocked("evt_"),
		typ:        typ,
		created:    s.nowLocked(),
		apiVersion: s.apiVersion,
		kind:       kind,
		object:     object,
		previous:   previous,
		request:    rq,
		pending:    map[string]bool{},
	}
	for _, ep := range s.endpoints {
		if ep.wants(typ) {
			e.pending[ep.ID] = true
		}
	}
	s.events.insert(e)
	s.eventLog = append(s.eventLog, e)
	if len(e.pending) > 0 {
		s.wake()
	}
	return e
}

// renderLocked returns the event's JSON as seen by a reader of API version
// version ("" = the event's own); callers hold mu.
func (s *Server) renderLocked(e *event, version string) []byte {
	if version == "" {
		version = e.apiVersion
	}
	pending := 0
	for _, p := range e.pending {
		if p {
			pending++
		}
	}
	v := eventJSON{
		ID: e.id, Object: "event", APIVersion: version, Created: e.created,
		Data:            eventDataJSON{Object: renderObject(e.kind, e.object, version), PreviousAttributes: e.previous},
		PendingWebhooks: pending, Type: e.typ,
		Request: eventRequestJSON{ID: strPtr(e.request.id), IdempotencyKey: strPtr(e.request.idempotencyKey)},
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic("stripefake: marshal event: " + err.Error()) // raw parts are our own JSON
	}
	return b
}

// previousAttributes returns Stripe's data.previous_attributes for a change
// from before to after: every top-level field that changed, with its old
// value; for metadata only the keys that changed (null for added ones).
// It returns nil when nothing changed.
func previousAttributes(before, after []byte) []byte {
	var b, a map[string]json.RawMessage
	if json.Unmarshal(before, &b) != nil || json.Unmarshal(after, &a) != nil {
		return nil
	}
	prev := map[string]json.RawMessage{}
	for k, old := range b {
		if bytes.Equal(old, a[k]) {
			continue
		}
		if k == "metadata" {
			prev[k] = metadataDiff(old, a[k])
			continue
		}
		prev[k] = old
	}
	if len(prev) == 0 {
		return nil
	}
	out, _ := json.Marshal(prev) // raw values re-marshal
	return out
}

func metadataDiff(before, after json.RawMessage) json.RawMessage {
	var b, a map[string]string
	_ = json.Unmarshal(before, &b)
	_ = json.Unmarshal(after, &a)
	diff := map[string]*string{}
	for k, v := range b {
		if a[k] != v {
			diff[k] = &v
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			diff[k] = nil
		}
	}
	out, _ := json.Marshal(diff)
	return out
}

// Events returns every event the fake has created, oldest first, including
// those past retention (which the API no longer lists).
func (s *Server) Events() []*stripe.Event {
	s.mu.RLock()
	raws := make([][]byte, len(s.eventLog))
	for i, e := range s.eventLog {
		raws[i] = s.renderLocked(e, "")
	}
	s.mu.RUnlock()
	out := make([]*stripe.Event, 0, len(raws))
	for _, b := range raws {
		var e stripe.Event
		if err := json.Unmarshal(b, &e); err != nil {
			panic("stripefake: decode own event: " + err.Error())
		}
		out = append(out, &e)
	}
	return out
}

// Event returns one event by id, as GET /v1/events/{id} would, ignoring
// retention.
func (s *Server) Event(id string) (*stripe.Event, error) {
	s.mu.RLock()
	e, ok := s.events.get(id)
	var b []byte
	if ok {
		b = s.renderLocked(e, "")
	}
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("event %s: %w", id, notFound("event", id))
	}
	var out stripe.Event
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode event %s: %w", id, err)
	}
	return &out, nil
}

// EventTypes returns the types of every event created so far, oldest first:
// a compact view for assertions.
func (s *Server) EventTypes() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, len(s.eventLog))
	for i, e := range s.eventLog {
		out[i] = e.typ
	}
	return slices.Clip(out)
}
