package reconcile

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by a store for a row that does not exist.
var ErrNotFound = errors.New("not found")

// ErrUnavailable wraps a store's errors that mean the database could not
// be reached or could not serve the request: retry later.
var ErrUnavailable = errors.New("database unavailable")

// Inbox is the event store the Applier drains.
type Inbox interface {
	// ClaimBatch begins a Batch holding up to limit due events, in due
	// order; a nil Batch when none is due.
	ClaimBatch(ctx context.Context, limit int) (Batch, []ClaimedEvent, error)
	// ClaimEventIDs begins a Batch holding those of ids still to apply and
	// held by no other batch.
	ClaimEventIDs(ctx context.Context, ids []string) (Batch, []ClaimedEvent, error)
}

// Batch is a transaction holding claimed inbox events; until it commits or
// rolls back, no other batch holds them.
type Batch interface {
	// Lock takes the locks of the subscriptions ids, which every writer of
	// a subscription takes, in an order that cannot deadlock, and returns
	// their stored rows, read once the locks are held.
	Lock(ctx context.Context, ids []string) (map[string]Subscription, error)
	// Write writes rows, changes and event results.
	Write(ctx context.Context, w BatchWrite) error
	Commit() error
	Rollback()
}

// Store is what a Reconciler needs from the database: the runs it
// records, the leader lock of a job, the events catch-up's cursor and inbox,
// and the sweep's rows.
type Store interface {
	StartRun(ctx context.Context, job string, dryRun bool) (int64, error)
	FinishRun(ctx context.Context, id int64, status string, c RunCounts, errText string) error
	AbandonRuns(ctx context.Context, job string) (int, error)
	LastSuccess(ctx context.Context, job string) (time.Time, error)
	InsertDrift(ctx context.Context, runID int64, drift []Drift) error
	TryLeaderLock(ctx context.Context, name string) (LeaderLock, bool, error)

	Cursor(ctx context.Context, job string) (time.Time, error)
	AdvanceCursor(ctx context.Context, job string, at time.Time) (time.Time, error)
	InsertEvents(ctx context.Context, evs []NewEvent) ([]string, error)
	EventIDsStored(ctx context.Context, ids []string) (map[string]bool, error)
	EventsSettled(ctx context.Context, ids []string) (applied, waiting int, err error)

	SubscriptionsByID(ctx context.Context, ids []string) (map[string]Subscription, error)
	// RepairSubscriptions writes rows through the guarded upsert and
	// records under run runID the drift of each row not refused as stale
	// (drift[i] is rows[i]'s), each row's drift in the transaction that
	// writes it; results are in the order of rows. A row whose only drift
	// is FieldMissingInDB is one the caller found without a row, which
	// the store may insert without reading it first, as long as it still
	// has none.
	RepairSubscriptions(ctx context.Context, runID int64, rows []Subscription, drift [][]Drift) ([]UpsertResult, error)
	NewSeenSet(ctx context.Context) (SeenSet, error)
}

// LeaderLock is held by the one process running a job.
type LeaderLock interface {
	// Check reports an error when the lock is lost (its connection died).
	Check(ctx context.Context) error
	Release(ctx context.Context) error
}

// SeenSet collects the subscription ids a sweep saw in Stripe, to find the
// stored rows Stripe did not list.
type SeenSet interface {
	Add(ctx context.Context, ids []string) error
	EachUnseen(ctx context.Context, fn func(Subscription) error) error
	Close(ctx context.Context)
}
