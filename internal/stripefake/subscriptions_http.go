package stripefake

import (
	"net/http"
	"net/url"
	"strconv"
)

// validStatusFilter tells whether GET /v1/subscriptions accepts status.
func validStatusFilter(status string) bool {
	switch status {
	case "", "all", "ended", "active", "past_due", "unpaid", "canceled", "incomplete",
		"incomplete_expired", "trialing", "paused":
		return true
	}
	return false
}

func (s *Server) handleCreateSubscription(w http.ResponseWriter, r *http.Request) {
	form, ok := parseForm(w, r)
	if !ok {
		return
	}
	trial, _, err := intParam(form, "trial_period_days")
	if err != nil {
		writeError(w, err)
		return
	}
	cape, _, err := boolParam(form, "cancel_at_period_end")
	if err != nil {
		writeError(w, err)
		return
	}
	md, _ := parseMetadata(form)
	p := SubscriptionParams{
		Customer: form.Get("customer"), Price: indexed(form, "items")[0]["price"],
		Metadata: md.apply(nil), TrialPeriodDays: trial, CancelAtPeriodEnd: cape,
		DefaultIncomplete: form.Get("payment_behavior") == "default_incomplete",
	}
	version := s.readVersion(r)
	s.mu.Lock()
	sub, err := s.createSubLocked(p, requestInfo(w, r))
	var b []byte
	if err == nil {
		b, err = s.expandLocked(sub.json(), "", repeated(form, "expand"))
	}
	s.mu.Unlock()
	if err != nil {
		writeError(w, err)
		return
	}
	writeRaw(w, http.StatusOK, renderObject("subscription", b, version))
}

func (s *Server) handleGetSubscription(w http.ResponseWriter, r *http.Request) {
	form, ok := parseForm(w, r)
	if !ok {
		return
	}
	version := s.readVersion(r)
	s.serveGet(w, r, "subscription", func(id string) ([]byte, bool, error) {
		sub, ok := s.subs.get(id)
		if !ok {
			return nil, false, nil
		}
		b, err := s.expandLocked(sub.json(), "", repeated(form, "expand"))
		return renderObject("subscription", b, version), true, err
	})
}

// parseSubUpdate reads the parameters of POST /v1/subscriptions/{id}.
func parseSubUpdate(form url.Values) (subUpdate, error) {
	var u subUpdate
	if it := indexed(form, "items")[0]; it != nil {
		u.price, u.itemID = it["price"], it["id"]
		u.replaceItem = u.itemID == "" && u.price != ""
	}
	if v, ok, err := boolParam(form, "cancel_at_period_end"); err != nil {
		return u, err
	} else if ok {
		u.cancelAtPeriodEnd = &v
	}
	if md, ok := parseMetadata(form); ok {
		u.metadata = &md
	}
	if form.Has("pause_collection") && form.Get("pause_collection") == "" {
		u.clearPause = true
	}
	if pc, ok := bracketed(form, "pause_collection"); ok {
		u.pause = &pauseCollection{Behavior: pc["behavior"]}
		if at := pc["resumes_at"]; at != "" {
			v, err := strconv.ParseInt(at, 10, 64)
			if err != nil {
				return u, invalid("pause_collection[resumes_at]", "parameter_invalid_integer", "Invalid integer: %s", at)
			}
			u.pause.ResumesAt = &v
		}
	}
	return u, nil
}

func (s *Server) handleUpdateSubscription(w http.ResponseWriter, r *http.Request) {
	form, ok := parseForm(w, r)
	if !ok {
		return
	}
	u, err := parseSubUpdate(form)
	if err != nil {
		writeError(w, err)
		return
	}
	version := s.readVersion(r)
	s.mu.Lock()
	sub, err := s.updateSubLocked(r.PathValue("id"), u, requestInfo(w, r))
	var b []byte
	if err == nil {
		b, err = s.expandLocked(sub.json(), "", repeated(form, "expand"))
	}
	s.mu.Unlock()
	if err != nil {
		writeError(w, err)
		return
	}
	writeRaw(w, http.StatusOK, renderObject("subscription", b, version))
}

func (s *Server) handleCancelSubscription(w http.ResponseWriter, r *http.Request) {
	version := s.readVersion(r)
	id := r.PathValue("id")
	s.mu.Lock()
	sub, ok := s.subs.get(id)
	var err error
	var b []byte
	switch {
	case !ok:
		err = notFound("subscription", id)
	case sub.ended():
		err = invalid("", "", "This subscription has already been canceled (status %s).", sub.Status)
	default:
		s.cancelLocked(sub, requestInfo(w, r))
		b = sub.json()
	}
	s.mu.Unlock()
	if err != nil {
		writeError(w, err)
		return
	}
	writeRaw(w, http.StatusOK, renderObject("subscription", b, version))
}

func (s *Server) handleResumeSubscription(w http.ResponseWriter, r *http.Request) {
	version := s.readVersion(r)
	s.mu.Lock()
	sub, err := s.resumeLocked(r.PathValue("id"), requestInfo(w, r))
	var b []byte
	if err == nil {
		b = sub.json()
	}
	s.mu.Unlock()
	if err != nil {
		writeError(w, err)
		return
	}
	writeRaw(w, http.StatusOK, renderObject("subscription", b, version))
}

// subscriptionFilter builds the match function of GET /v1/subscriptions.
func subscriptionFilter(form url.Values) (func(*subscription) bool, error) {
	status := form.Get("status")
	if !validStatusFilter(status) {
		return nil, invalid("status", "", "Invalid status: must be one of active, all, canceled, ended, "+
			"incomplete, incomplete_expired, past_due, paused, trialing, or unpaid")
	}
	cus, priceID := form.Get("customer"), form.Get("price")
	return func(sub *subscription) bool {
		switch status {
		case "":
			if sub.ended() {
				return false
			}
		case "all":
		case "ended":
			if !sub.ended() {
				return false
			}
		default:
			if sub.Status != status {
				return false
			}
		}
		return (cus == "" || sub.Customer == cus) && (priceID == "" || sub.item().Price.ID == priceID)
	}, nil
}

func (s *Server) handleListSubscriptions(w http.ResponseWriter, r *http.Request) {
	form, ok := parseForm(w, r)
	if !ok {
		return
	}
	q, err := parseListQuery(form)
	if err != nil {
		writeError(w, err)
		return
	}
	match, err := subscriptionFilter(form)
	if err != nil {
		writeError(w, err)
		return
	}
	version := s.readVersion(r)
	expand := repeated(form, "expand")
	s.mu.RLock()
	rows, more, err := s.subs.page(q, match)
	items := make([][]byte, 0, len(rows))
	for _, sub := range rows {
		if err != nil {
			break
		}
		var b []byte
		b, err = s.expandLocked(sub.json(), "data.", expand)
		items = append(items, renderObject("subscription", b, version))
	}
	s.mu.RUnlock()
	if err != nil {
		writeError(w, err)
		return
	}
	s.writeList(w, "/v1/subscriptions", items, more)
}
