package stripefake

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// routes registers every API route on mux.
func (s *Server) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/products", s.handleCreateProduct)
	mux.HandleFunc("GET /v1/products/{id}", s.handleGetProduct)
	mux.HandleFunc("POST /v1/prices", s.handleCreatePrice)
	mux.HandleFunc("GET /v1/prices", s.handleListPrices)
	mux.HandleFunc("GET /v1/prices/{id}", s.handleGetPrice)
	mux.HandleFunc("POST /v1/customers", s.handleCreateCustomer)
	mux.HandleFunc("GET /v1/customers", s.handleListCustomers)
	mux.HandleFunc("GET /v1/customers/{id}", s.handleGetCustomer)
	mux.HandleFunc("POST /v1/customers/{id}", s.handleUpdateCustomer)
	mux.HandleFunc("DELETE /v1/customers/{id}", s.handleDeleteCustomer)
	mux.HandleFunc("POST /v1/subscriptions", s.handleCreateSubscription)
	mux.HandleFunc("GET /v1/subscriptions", s.handleListSubscriptions)
	mux.HandleFunc("GET /v1/subscriptions/{id}", s.handleGetSubscription)
	mux.HandleFunc("POST /v1/subscriptions/{id}", s.handleUpdateSubscription)
	mux.HandleFunc("DELETE /v1/subscriptions/{id}", s.handleCancelSubscription)
	mux.HandleFunc("POST /v1/subscriptions/{id}/resume", s.handleResumeSubscription)
	mux.HandleFunc("GET /v1/invoices", s.handleListInvoices)
	mux.HandleFunc("GET /v1/invoices/{id}", s.handleGetInvoice)
	mux.HandleFunc("GET /v1/events", s.handleListEvents)
	mux.HandleFunc("GET /v1/events/{id}", s.handleGetEvent)
	mux.HandleFunc("GET /v1/webhook_endpoints", s.handleListWebhookEndpoints)
	mux.HandleFunc("POST /v1/webhook_endpoints", s.handleCreateWebhookEndpoint)
	mux.HandleFunc("GET /v1/balance", s.handleBalance)
	mux.HandleFunc("GET /v1/account", s.handleAccount)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{
			status: http.StatusNotFound, typ: "invalid_request_error",
			message: fmt.Sprintf("Unrecognized request URL (%s: %s).", r.Method, r.URL.Path),
		})
	})
}

// statusWriter remembers the status answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the status, then sends it.
func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// buildHandler wraps the routes with what every request goes through:
// request id, counting, latency, authentication, injected faults.
func (s *Server) buildHandler() http.Handler {
	mux := http.NewServeMux()
	s.routes(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, route := mux.Handler(r)
		if route == "/" || route == "" {
			route = "unknown"
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		sw.Header().Set("Request-Id", s.faults.requestID())
		start := time.Now()
		defer func() {
			s.faults.record(route, sw.status)
			s.log.Debug("stripefake request", "method", r.Method, "path", r.URL.Path,
				"route", route, "status", sw.status, "duration", time.Since(start))
		}()
		if d := s.faults.latency(); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				sw.status = 499 // client went away; nothing is written
				return
			}
		}
		if err := s.authenticate(r); err != nil {
			writeError(sw, err)
			return
		}
		if ferr, retry := s.faults.decide(); ferr != nil {
			if retry {
				sw.Header().Set("Stripe-Should-Retry", "true")
			}
			writeError(sw, ferr)
			return
		}
		mux.ServeHTTP(sw, r)
	})
}

// authenticate checks the secret key (Bearer, or Basic with the key as
// user name, both of which Stripe accepts).
func (s *Server) authenticate(r *http.Request) error {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		key, _, ok = r.BasicAuth()
	}
	if !ok || key == "" {
		return &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error",
			message: "You did not provide an API key. You need to provide your API key in the Authorization header, " +
				"using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."}
	}
	if subtle.ConstantTimeCompare([]byte(key), []byte(s.apiKey)) != 1 {
		return &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error",
			message: "Invalid API Key provided: " + maskKey(key)}
	}
	return nil
}

// maskKey shows a key as Stripe does in errors: prefix and last four.
func maskKey(key string) string {
	prefix := ""
	if i := strings.LastIndexByte(key, '_'); i >= 0 && i < len(key)-1 {
		prefix = key[:i+1]
	}
	if len(key)-len(prefix) <= 4 {
		return prefix + "****"
	}
	return prefix + "****" + key[len(key)-4:]
}

type balanceAmount struct {
	Amount      int64            `json:"amount"`
	Currency    string           `json:"currency"`
	SourceTypes map[string]int64 `json:"source_types"`
}

type balanceJSON struct {
	Object    string          `json:"object"`
	Available []balanceAmount `json:"available"`
	Livemode  bool            `json:"livemode"`
	Pending   []balanceAmount `json:"pending"`
}

func (s *Server) handleBalance(w http.ResponseWriter, _ *http.Request) {
	zero := []balanceAmount{{Currency: "brl", SourceTypes: map[string]int64{"card": 0}}}
	writeJSON(w, balanceJSON{Object: "balance", Available: zero, Pending: zero})
}

type accountJSON struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	BusinessType     any               `json:"business_type"`
	ChargesEnabled   bool              `json:"charges_enabled"`
	Country          string            `json:"country"`
	Created          int64             `json:"created"`
	DefaultCurrency  string            `json:"default_currency"`
	DetailsSubmitted bool              `json:"details_submitted"`
	Email            string            `json:"email"`
	Metadata         map[string]string `json:"metadata"`
	PayoutsEnabled   bool              `json:"payouts_enabled"`
	Type             string            `json:"type"`
}

func (s *Server) handleAccount(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, accountJSON{
		ID: s.accountID, Object: "account", ChargesEnabled: true, Country: "BR", Created: 1577836800,
		DefaultCurrency: "brl", DetailsSubmitted: true, Email: "fake@example.com",
		Metadata: map[string]string{}, PayoutsEnabled: true, Type: "standard",
	})
}

// serveGet answers GET of one kind of object by the {id} of the path: get
// finds it and render renders it, both under the read lock; a missing one is
// a 404 resource_missing.
func serveGet[T any](s *Server, w http.ResponseWriter, r *http.Request, kind string,
	get func(id string) (T, bool), render func(T) ([]byte, error)) {
	id := r.PathValue("id")
	s.mu.RLock()
	v, ok := get(id)
	var b []byte
	var err error
	if ok {
		b, err = render(v)
	}
	s.mu.RUnlock()
	switch {
	case !ok:
		writeError(w, notFound(kind, id))
	case err != nil:
		writeError(w, err)
	default:
		writeRaw(w, http.StatusOK, b)
	}
}

// marshal renders a model struct as it is.
func marshal[T any](v T) ([]byte, error) { return json.Marshal(v) }
