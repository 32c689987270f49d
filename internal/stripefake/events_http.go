package stripefake

import (
	"net/http"
	"net/url"
	"path"
)

func (s *Server) handleGetEvent(w http.ResponseWriter, r *http.Request) {
	serveGet(s, w, r, "event", s.recentEventLocked, s.renderEventLocked)
}

// recentEventLocked returns the event with that id if it is recent enough
// to be read.
func (s *Server) recentEventLocked(id string) (*event, bool) {
	e, ok := s.events.get(id)
	return e, ok && e.created >= s.nowLocked()-eventRetention
}

// pageRecentEventsLocked pages the events recent enough to be listed.
func (s *Server) pageRecentEventsLocked(q pageQuery, match func(*event) bool) ([]*event, bool, error) {
	q.minCreated = max(q.minCreated, s.nowLocked()-eventRetention)
	return s.events.page(q, match)
}

// renderEventLocked renders an event in its own API version.
func (s *Server) renderEventLocked(e *event) ([]byte, error) { return s.renderLocked(e, ""), nil }

// eventTypeFilter builds the match of type (which may hold * wildcards, as
// in customer.subscription.*) or types[] (exact names, up to 20).
func eventTypeFilter(typ string, types []string) (func(*event) bool, error) {
	if typ != "" && len(types) > 0 {
		return nil, invalid("types", "", "You may pass either `type` or `types`, but not both.")
	}
	if len(types) > 20 {
		return nil, invalid("types", "", "You may pass at most 20 values for `types`.")
	}
	if typ != "" {
		if _, err := path.Match(typ, ""); err != nil {
			return nil, invalid("type", "", "Invalid type: %s", typ)
		}
		return func(e *event) bool { ok, _ := path.Match(typ, e.typ); return ok }, nil
	}
	if len(types) > 0 {
		set := make(map[string]bool, len(types))
		for _, t := range types {
			set[t] = true
		}
		return func(e *event) bool { return set[e.typ] }, nil
	}
	return nil, nil
}

func (s *Server) handleListEvents(w http.ResponseWriter, r *http.Request) {
	serveList(s, w, r, "/v1/events", s.pageRecentEventsLocked, func(form url.Values) (listing[*event], error) {
		if _, _, err := boolParam(form, "delivery_success"); err != nil {
			return listing[*event]{}, err // validated, then ignored
		}
		match, err := eventTypeFilter(form.Get("type"), repeated(form, "types"))
		return listing[*event]{match: match, render: s.renderEventLocked}, err
	})
}
