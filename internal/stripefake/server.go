package stripefake

import (
	"cmp"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// DefaultAPIKey is the secret key a Server accepts when Options.APIKey is empty.
const DefaultAPIKey = "sk_test_fake"

// DefaultAPIVersion is the API version a Server stamps on events when
// Options.APIVersion is empty: the one stripe-go v76 pins.
const DefaultAPIVersion = stripe.APIVersion

// Options configures a Server. The zero value is usable.
type Options struct {
	// APIKey is the only secret key accepted (Authorization: Bearer <key>);
	// DefaultAPIKey when empty.
	APIKey string
	// Clock gives the fake's notion of now (created, periods, retention);
	// time.Now when nil. SetClock replaces it at runtime.
	Clock func() time.Time
	// APIVersion is the account's default API version: events are stamped
	// and rendered with it, and so are API responses to requests that send
	// no Stripe-Version header. DefaultAPIVersion when empty.
	APIVersion string
	// Seed makes ids and injected faults reproducible; 0 picks a random seed.
	Seed int64
	// Logger receives one debug line per request; discarded when nil.
	Logger *slog.Logger
	// HTTPClient delivers webhooks; a client with a 10s timeout when nil.
	HTTPClient *http.Client
}

// Server is a stateful, goroutine-safe fake of the Stripe API. Build one with
// New (listening on 127.0.0.1) or NewUnstarted (mount Handler yourself).
type Server struct {
	apiKey string
	log    *slog.Logger
	client *http.Client

	mu          sync.RWMutex
	clock       func() time.Time
	apiVersion  string
	rnd         *rand.Rand
	accountID   string
	products    *table[*product]
	prices      *table[*price]
	customers   *table[*customer]
	subs        *table[*subscription]
	invoices    *table[*invoice]
	events      *table[*event]
	eventLog    []*event // creation order
	pendingFrom int      // eventLog index before which nothing is pending
	endpoints   []*endpoint
	custSubs    map[string][]string // customer id → subscription ids
	lookupKeys  map[string]string   // lookup_key → price id

	faults  *faultState
	bufs    sync.Pool // *bytes.Buffer for list pages
	notify  chan struct{}
	handler http.Handler
	httpSrv *httptest.Server
}

// NewUnstarted builds a Server that does not listen; serve Handler yourself.
func NewUnstarted(opts Options) *Server {
	seed := uint64(opts.Seed)
	if seed == 0 {
		seed = rand.Uint64() | 1
	}
	s := &Server{
		apiKey:     cmp.Or(opts.APIKey, DefaultAPIKey),
		log:        opts.Logger,
		client:     opts.HTTPClient,
		clock:      opts.Clock,
		apiVersion: cmp.Or(opts.APIVersion, DefaultAPIVersion),
		rnd:        rand.New(rand.NewPCG(seed, 0x5eed_1d5)),
		products:   newTable[*product]("product"),
		prices:     newTable[*price]("price"),
		customers:  newTable[*customer]("customer"),
		subs:       newTable[*subscription]("subscription"),
		invoices:   newTable[*invoice]("invoice"),
		events:     newTable[*event]("event"),
		custSubs:   map[string][]string{},
		lookupKeys: map[string]string{},
		faults:     newFaultState(seed),
		notify:     make(chan struct{}, 1),
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 10 * time.Second}
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	s.accountID = s.newIDLocked("acct_")
	s.handler = s.buildHandler()
	return s
}

// New builds a Server listening on a random port of 127.0.0.1.
// Close it when done.
func New(opts Options) *Server {
	s := NewUnstarted(opts)
	s.httpSrv = httptest.NewServer(s.handler)
	return s
}

// Handler returns the HTTP handler serving the fake API, to mount elsewhere.
func (s *Server) Handler() http.Handler { return s.handler }

// URL returns the base URL of the listening server (http://127.0.0.1:port),
// or "" for a Server built with NewUnstarted.
func (s *Server) URL() string {
	if s.httpSrv == nil {
		return ""
	}
	return s.httpSrv.URL
}

// BackendConfig returns a stripe-go backend configuration aimed at the
// listening server, with retries off and the library's logging silenced;
// adjust it before stripe.GetBackendWithConfig.
func (s *Server) BackendConfig() *stripe.BackendConfig {
	return &stripe.BackendConfig{
		URL:               stripe.String(s.URL()),
		MaxNetworkRetries: stripe.Int64(0),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
}

// Client returns a stripe-go client of the listening server using
// BackendConfig and the accepted key.
func (s *Server) Client() *client.API {
	b := stripe.GetBackendWithConfig(stripe.APIBackend, s.BackendConfig())
	api := &client.API{}
	api.Init(s.apiKey, &stripe.Backends{API: b, Connect: b, Uploads: b})
	return api
}

// APIKey returns the secret key the Server accepts.
func (s *Server) APIKey() string { return s.apiKey }

// Close stops the listening server, if any, waiting for requests in flight.
func (s *Server) Close() {
	if s.httpSrv != nil {
		s.httpSrv.Close()
	}
}

// SetClock replaces the fake's clock; nil restores time.Now. Tests use it to
// put two events in the same second or to age events past retention.
func (s *Server) SetClock(clock func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if clock == nil {
		clock = time.Now
	}
	s.clock = clock
}

// Now returns the fake's current time.
func (s *Server) Now() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.clock()
}

// SetAPIVersion changes the API version stamped on events created from now
// on (for example "2025-03-31.basil"), and the default rendering version.
func (s *Server) SetAPIVersion(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiVersion = cmp.Or(v, DefaultAPIVersion)
}

// nowLocked is the fake's clock in Unix seconds; callers hold mu.
func (s *Server) nowLocked() int64 { return s.clock().Unix() }

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newIDLocked returns prefix plus 24 base62 characters; callers hold mu for
// writing (the generator is not goroutine-safe).
func (s *Server) newIDLocked(prefix string) string {
	b := make([]byte, len(prefix)+24)
	copy(b, prefix)
	for i := len(prefix); i < len(b); i++ {
		b[i] = base62[s.rnd.IntN(len(base62))]
	}
	return string(b)
}

// wake tells AutoDeliver that events are waiting, without blocking.
func (s *Server) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}
