package stripefake

import (
	"maps"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Faults are failures injected into API requests (not into the Go helpers).
// Decisions come from a generator seeded by Options.Seed, so a run with the
// same seed and the same request order fails the same requests.
type Faults struct {
	// Latency delays every request before it is served (the state lock is
	// not held while waiting).
	Latency time.Duration
	// ErrorRate is the probability of a 500 api_error.
	ErrorRate float64
	// RateLimitRate is the probability of a 429 rate_limit error.
	RateLimitRate float64
	// FailNext fails the next FailNext requests with FailNextCode (500 when
	// 0), before the rates are considered.
	FailNext int
	// FailNextCode is the status FailNext answers (429 is a rate_limit,
	// 5xx an api_error, other 4xx an invalid_request_error).
	FailNextCode int
	// ShouldRetry adds Stripe-Should-Retry: true to injected errors, which
	// makes stripe-go retry them (Stripe sends no such header on rate limits).
	ShouldRetry bool
}

// Stats counts the API requests served.
type Stats struct {
	// Requests is the total.
	Requests int64
	// ByRoute counts by route pattern, such as "GET /v1/subscriptions" or
	// "POST /v1/subscriptions/{id}"; requests matching no route count under
	// "unknown".
	ByRoute map[string]int64
	// ByStatus counts by HTTP status answered.
	ByStatus map[int]int64
	// Injected counts the errors injected by Faults.
	Injected int64
}

// faultState holds faults, counters and the request-id generator, under a
// lock of its own so that counting never waits on the state lock.
type faultState struct {
	mu     sync.Mutex
	faults Faults
	rnd    *rand.Rand
	stats  Stats
}

func newFaultState(seed uint64) *faultState {
	return &faultState{
		rnd:   rand.New(rand.NewPCG(seed, 0xfa017)),
		stats: Stats{ByRoute: map[string]int64{}, ByStatus: map[int]int64{}},
	}
}

// SetFaults replaces the injected faults; the zero Faults turns them off.
func (s *Server) SetFaults(f Faults) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.faults = f
}

// CurrentFaults returns the faults in force (FailNext counts down).
func (s *Server) CurrentFaults() Faults {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.faults
}

// Stats returns a copy of the request counters.
func (s *Server) Stats() Stats {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	st := s.faults.stats
	st.ByRoute = maps.Clone(st.ByRoute)
	st.ByStatus = maps.Clone(st.ByStatus)
	return st
}

// ResetStats sets the request counters to zero.
func (s *Server) ResetStats() {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.stats = Stats{ByRoute: map[string]int64{}, ByStatus: map[int]int64{}}
}

// latency returns the delay to apply to the next request.
func (f *faultState) latency() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.faults.Latency
}

// decide returns the error to inject into this request, or nil.
func (f *faultState) decide() (*apiError, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	code := 0
	switch {
	case f.faults.FailNext > 0:
		f.faults.FailNext--
		code = f.faults.FailNextCode
		if code == 0 {
			code = http.StatusInternalServerError
		}
	case f.faults.ErrorRate > 0 && f.rnd.Float64() < f.faults.ErrorRate:
		code = http.StatusInternalServerError
	case f.faults.RateLimitRate > 0 && f.rnd.Float64() < f.faults.RateLimitRate:
		code = http.StatusTooManyRequests
	default:
		return nil, false
	}
	f.stats.Injected++
	return injectedError(code), f.faults.ShouldRetry
}

// injectedError is the Stripe error body for an injected status.
func injectedError(code int) *apiError {
	switch {
	case code == http.StatusTooManyRequests:
		return &apiError{status: code, typ: "invalid_request_error", code: "rate_limit",
			message: "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."}
	case code == http.StatusUnauthorized:
		return &apiError{status: code, typ: "invalid_request_error", message: "Invalid API Key provided (injected)."}
	case code == http.StatusPaymentRequired:
		return &apiError{status: code, typ: "card_error", code: "card_declined", message: "Your card was declined (injected)."}
	case code >= 400 && code < 500:
		return &apiError{status: code, typ: "invalid_request_error", message: "Injected client error."}
	default:
		return &apiError{status: code, typ: "api_error",
			message: "An unknown error occurred (injected by stripefake)."}
	}
}

// requestID returns a fresh req_… id.
func (f *faultState) requestID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := []byte("req_00000000000000")
	for i := 4; i < len(b); i++ {
		b[i] = base62[f.rnd.IntN(len(base62))]
	}
	return string(b)
}

// record counts one request answered.
func (f *faultState) record(route string, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.Requests++
	f.stats.ByRoute[route]++
	f.stats.ByStatus[status]++
}
