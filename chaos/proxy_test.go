package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// recorder is a reverse proxy between the fake's webhook sender and the
// daemon that records the answer to every delivery, by event id: which
// events the daemon acknowledged with a 200.
type recorder struct {
	mu       sync.Mutex
	answers  map[string][]int // event id → statuses answered, in order
	byStatus map[int]int
	requests int
}

type eventIDKey struct{}

// newRecorder starts the proxy in front of target (http://host:port) and
// returns it with its URL.
func newRecorder(t *testing.T, target string) (*recorder, string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{answers: map[string][]int{}, byStatus: map[int]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		r.record(resp.Request.Context(), resp.StatusCode)
		return nil
	}
	rp.ErrorHandler = func(w http.ResponseWriter, req *http.Request, err error) {
		r.record(req.Context(), http.StatusBadGateway) // the daemon is down or died mid-request
		w.WriteHeader(http.StatusBadGateway)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		var ev struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(body, &ev)
		req.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), eventIDKey{}, ev.ID)))
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL
}

func (r *recorder) record(ctx context.Context, status int) {
	id, _ := ctx.Value(eventIDKey{}).(string)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	r.byStatus[status]++
	r.answers[id] = append(r.answers[id], status)
}

// acknowledged returns the ids of the events answered 200 at least once.
func (r *recorder) acknowledged() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for id, sts := range r.answers {
		for _, s := range sts {
			if s == http.StatusOK {
				ids = append(ids, id)
				break
			}
		}
	}
	return ids
}

// proxyFigures are the recorder's counts.
type proxyFigures struct {
	Requests     int
	ByStatus     map[int]int
	Events       int // distinct events delivered at least once
	Acked        int // distinct events answered 200
	Redelivered  int // events that reached the daemon more than once
	AfterFailure int // events answered 200 after a failed attempt
}

func (r *recorder) figures() proxyFigures {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := proxyFigures{Requests: r.requests, ByStatus: map[int]int{}, Events: len(r.answers)}
	for s, n := range r.byStatus {
		f.ByStatus[s] = n
	}
	for _, sts := range r.answers {
		if len(sts) > 1 {
			f.Redelivered++
		}
		failed := false
		for _, s := range sts {
			if s == http.StatusOK {
				f.Acked++
				if failed {
					f.AfterFailure++
				}
				break
			}
			failed = true
		}
	}
	return f
}
