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
	s.serveSubscriptionChange(w, r, repeated(form, "expand"), func(rq reqInfo) (*subscription, error) {
		return s.createSubLocked(p, rq)
	})
}

// serveSubscriptionChange runs change under the write lock and answers the
// subscription it returns, expanded along expand and rendered in the
// request's API version.
func (s *Server) serveSubscriptionChange(w http.ResponseWriter, r *http.Request, expand []string,
	change func(reqInfo) (*subscription, error)) {
	version := s.readVersion(r)
	s.mu.Lock()
	sub, err := change(requestInfo(w, r))
	var b []byte
	if err == nil {
		b, err = s.expandLocked(sub.json(), "", expand)
	}
	s.mu.Unlock()
	if err != nil {
		writeError(w, err)
		return
	}
	writeRaw(w, http.StatusOK, renderObject("subscription", b, version))
}

func (s *Server) handleGetSubscription(w http.ResponseWriter, r *http.Request) {
	serveExpandedGet(s, w, r, s.subs)
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
	s.serveSubscriptionChange(w, r, repeated(form, "expand"), func(rq reqInfo) (*subscription, error) {
		return s.updateSubLocked(r.PathValue("id"), u, rq)
	})
}

func (s *Server) handleCancelSubscription(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.serveSubscriptionChange(w, r, nil, func(rq reqInfo) (*subscription, error) {
		sub, ok := s.subs.get(id)
		switch {
		case !ok:
			return nil, notFound("subscription", id)
		case sub.ended():
			return nil, invalid("", "", "This subscription has already been canceled (status %s).", sub.Status)
		}
		s.cancelLocked(sub, rq)
		return sub, nil
	})
}

func (s *Server) handleResumeSubscription(w http.ResponseWriter, r *http.Request) {
	s.serveSubscriptionChange(w, r, nil, func(rq reqInfo) (*subscription, error) {
		return s.resumeLocked(r.PathValue("id"), rq)
	})
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
	serveList(s, w, r, "/v1/subscriptions", s.subs.page, func(form url.Values) (listing[*subscription], error) {
		match, err := subscriptionFilter(form)
		if err != nil {
			return listing[*subscription]{}, err
		}
		render := expandedRender[*subscription](s, "subscription", s.readVersion(r), "data.", repeated(form, "expand"))
		return listing[*subscription]{match: match, render: render}, nil
	})
}
