package reconcile

import (
	"database/sql"
	"encoding/json"
	"time"

	"github.com/stripe/stripe-go/v76"
)

// Event statuses in stripe_webhook_events.
const (
	StatusPending = "pending"
	StatusApplied = "applied"
	StatusIgnored = "ignored"
	StatusFailed  = "failed"
	StatusDead    = "dead"
)

// Event sources.
const (
	SourceWebhook = "webhook"
	SourceCatchup = "catchup"
)

// NewEvent is an event to store in the inbox.
type NewEvent struct {
	ID             string
	Type           string
	APIVersion     string
	Created        time.Time
	Livemode       bool
	Source         string // SourceWebhook or SourceCatchup
	Status         string // StatusPending or StatusIgnored
	SubscriptionID string // the subscription the event is about, when known
	Payload        json.RawMessage
	// Object, when set, is Payload's data.object as
	// Resolver.SubscriptionFromObject reads it, read once where the event
	// arrived so that applying it as it is stored need not read it again.
	Object *stripe.Subscription
}

// ClaimedEvent is an inbox event a batch holds for applying.
type ClaimedEvent struct {
	ID             string          `db:"id"`
	Type           string          `db:"type"`
	APIVersion     sql.NullString  `db:"api_version"`
	Created        time.Time       `db:"stripe_created_at"`
	Source         string          `db:"source"`
	Attempts       int             `db:"attempts"`
	SubscriptionID sql.NullString  `db:"subscription_id"`
	ReceivedAt     time.Time       `db:"received_at"`
	Payload        json.RawMessage `db:"payload"`
	// Object is NewEvent.Object, for an event applied as it is stored.
	Object *stripe.Subscription `db:"-"`
}

// EventResult is how the processing of one claimed event ended.
type EventResult struct {
	ID             string
	Status         string // StatusApplied, StatusIgnored, StatusFailed or StatusDead
	Error          string
	RetryAt        time.Time // for StatusFailed
	SubscriptionID string    // subscription id learnt while processing, if any
}

// BatchWrite is everything one applying transaction writes, in one
// statement: the final row of each subscription (see Fold), the users whose
// features changed (an outbox row each when a cache key template is set,
// and a notification on ChangeChannel each), and the results of the inbox
// events the transaction claimed.
type BatchWrite struct {
	Rows    []Subscription
	Changes []Change
	Events  []EventResult
}

// Run statuses in reconcile_runs.
const (
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
)

// RunCounts are the figures a run reports.
type RunCounts struct {
	Scanned, Drifted, Fixed, Errors int
}

// Drift is one drifted field found by a run: a row of subscription_drift.
type Drift struct {
	SubscriptionID string `db:"stripe_subscription_id"`
	Field          string `db:"field"`
	DBValue        string `db:"db_value"`     // "" for null or missing
	StripeValue    string `db:"stripe_value"` // "" for null or missing
}
