package stripefake

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

// endpoint is a configured webhook endpoint.
type endpoint struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"`
	APIVersion    *string           `json:"api_version"`
	Application   any               `json:"application"`
	Created       int64             `json:"created"`
	Description   any               `json:"description"`
	EnabledEvents []string          `json:"enabled_events"`
	Livemode      bool              `json:"livemode"`
	Metadata      map[string]string `json:"metadata"`
	Status        string            `json:"status"`
	URL           string            `json:"url"`

	secret string
}

// wants tells whether the endpoint receives events of type typ.
func (ep *endpoint) wants(typ string) bool {
	return ep.Status == "enabled" && (slices.Contains(ep.EnabledEvents, "*") || slices.Contains(ep.EnabledEvents, typ))
}

// AddWebhookEndpoint configures an endpoint that receives the events created
// from now on whose type is in enabledEvents (nil or ["*"] = all), signed
// with secret and rendered in apiVersion ("" = each event's own version).
// It returns the endpoint id (we_…).
func (s *Server) AddWebhookEndpoint(url, secret, apiVersion string, enabledEvents []string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addEndpointLocked(url, secret, apiVersion, enabledEvents).ID
}

func (s *Server) addEndpointLocked(url, secret, apiVersion string, enabledEvents []string) *endpoint {
	if len(enabledEvents) == 0 {
		enabledEvents = []string{"*"}
	}
	ep := &endpoint{
		ID: s.newIDLocked("we_"), Object: "webhook_endpoint", APIVersion: strPtr(apiVersion),
		Created: s.nowLocked(), EnabledEvents: slices.Clone(enabledEvents), Metadata: map[string]string{},
		Status: "enabled", URL: url, secret: secret,
	}
	s.endpoints = append(s.endpoints, ep)
	return ep
}

// SignPayload returns the Stripe-Signature header value for payload signed
// with secret at t: "t=<unix>,v1=<hex HMAC-SHA256 of "<unix>.<payload>">".
func SignPayload(payload []byte, secret string, t time.Time) string {
	sig := webhook.ComputeSignature(t, payload, secret)
	return "t=" + strconv.FormatInt(t.Unix(), 10) + ",v1=" + hex.EncodeToString(sig)
}

// delivery is one event to POST to one endpoint.
type delivery struct {
	eventID   string
	ep        *endpoint
	payload   []byte
	duplicate bool // an extra copy sent on purpose
}

// Deliver POSTs an event to every enabled endpoint that wants its type,
// signed with the endpoint's secret at the current wall-clock time. An event
// the fake created is rendered in the endpoint's API version; any other is
// marshalled as given. It returns the highest status answered (0 when no
// endpoint wants the event) and the transport errors, joined. A 2xx marks
// the event delivered to that endpoint.
func (s *Server) Deliver(ctx context.Context, evt *stripe.Event) (int, error) {
	jobs, err := s.deliveriesFor(evt)
	if err != nil {
		return 0, err
	}
	status := 0
	var errs []error
	for _, d := range jobs {
		code, err := s.post(ctx, d, time.Now())
		status = max(status, code)
		if err != nil {
			errs = append(errs, err)
		}
		if code >= 200 && code < 300 {
			s.markDelivered(d)
		}
	}
	return status, errors.Join(errs...)
}

func (s *Server) deliveriesFor(evt *stripe.Event) ([]delivery, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	stored, known := s.events.get(evt.ID)
	var jobs []delivery
	for _, ep := range s.endpoints {
		if !ep.wants(string(evt.Type)) {
			continue
		}
		var payload []byte
		if known {
			payload = s.renderLocked(stored, derefStr(ep.APIVersion))
		} else {
			b, err := json.Marshal(evt)
			if err != nil {
				return nil, fmt.Errorf("marshal event %s: %w", evt.ID, err)
			}
			payload = b
		}
		jobs = append(jobs, delivery{eventID: evt.ID, ep: ep, payload: payload})
	}
	return jobs, nil
}

// post sends one delivery and returns the status answered (0 on a
// transport error).
func (s *Server) post(ctx context.Context, d delivery, signedAt time.Time) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.ep.URL, bytes.NewReader(d.payload))
	if err != nil {
		return 0, fmt.Errorf("deliver %s to %s: %w", d.eventID, d.ep.URL, err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
	req.Header.Set("Stripe-Signature", SignPayload(d.payload, d.ep.secret, signedAt))
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("deliver %s to %s: %w", d.eventID, d.ep.URL, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// markDelivered clears an event's pending delivery to an endpoint.
func (s *Server) markDelivered(d delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.events.get(d.eventID); ok {
		delete(e.pending, d.ep.ID)
	}
}

func (s *Server) handleListWebhookEndpoints(w http.ResponseWriter, r *http.Request) {
	serveList(s, w, r, "/v1/webhook_endpoints", s.pageEndpointsLocked, func(url.Values) (listing[*endpoint], error) {
		return listing[*endpoint]{render: marshal[*endpoint]}, nil
	})
}

// pageEndpointsLocked pages the webhook endpoints newest first, in the
// reverse of the order they were added, after starting_after or before
// ending_before; they take no filters.
func (s *Server) pageEndpointsLocked(q pageQuery, _ func(*endpoint) bool) ([]*endpoint, bool, error) {
	newest := slices.Clone(s.endpoints)
	slices.Reverse(newest)
	position := func(id, param string) (int, error) {
		i := slices.IndexFunc(newest, func(ep *endpoint) bool { return ep.ID == id })
		if i < 0 {
			return 0, cursorMissing("webhook_endpoint", id, param)
		}
		return i, nil
	}
	if q.endingBefore != "" {
		end, err := position(q.endingBefore, "ending_before")
		if err != nil {
			return nil, false, err
		}
		start := max(end-q.limit, 0)
		return newest[start:end], start > 0, nil
	}
	start := 0
	if q.startingAfter != "" {
		i, err := position(q.startingAfter, "starting_after")
		if err != nil {
			return nil, false, err
		}
		start = i + 1
	}
	end := min(start+q.limit, len(newest))
	return newest[start:end], end < len(newest), nil
}

func (s *Server) handleCreateWebhookEndpoint(w http.ResponseWriter, r *http.Request) {
	form, ok := parseForm(w, r)
	if !ok {
		return
	}
	url := form.Get("url")
	events := repeated(form, "enabled_events")
	switch {
	case url == "":
		writeError(w, missingParam("url"))
		return
	case len(events) == 0:
		writeError(w, missingParam("enabled_events"))
		return
	}
	s.mu.Lock()
	ep := s.addEndpointLocked(url, s.newIDLocked("whsec_"), form.Get("api_version"), events)
	b, err := json.Marshal(struct {
		*endpoint
		Secret string `json:"secret"`
	}{ep, ep.secret})
	s.mu.Unlock()
	if err != nil {
		writeError(w, err)
		return
	}
	writeRaw(w, http.StatusOK, b)
}
