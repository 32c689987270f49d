package stripefake

import (
	"net/http"
	"path"
)

func (s *Server) handleGetEvent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.RLock()
	e, ok := s.events.get(id)
	ok = ok && e.created >= s.nowLocked()-eventRetention
	var b []byte
	if ok {
		b = s.renderLocked(e, "")
	}
	s.mu.RUnlock()
	if !ok {
		writeError(w, notFound("event", id))
		return
	}
	writeRaw(w, http.StatusOK, b)
}

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
	form, ok := parseForm(w, r)
	if !ok {
		return
	}
	q, err := parseListQuery(form)
	if err != nil {
		writeError(w, err)
		return
	}
	if _, _, err := boolParam(form, "delivery_success"); err != nil {
		writeError(w, err) // validated, then ignored
		return
	}
	match, err := eventTypeFilter(form.Get("type"), repeated(form, "types"))
	if err != nil {
		writeError(w, err)
		return
	}
	s.mu.RLock()
	q.minCreated = max(q.minCreated, s.nowLocked()-eventRetention)
	rows, more, err := s.events.page(q, match)
	items := make([][]byte, len(rows))
	for i, e := range rows {
		items[i] = s.renderLocked(e, "")
	}
	s.mu.RUnlock()
	if err != nil {
		writeError(w, err)
		return
	}
	s.writeList(w, "/v1/events", items, more)
}
