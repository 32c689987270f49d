package db

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/subsync/subsync/reconcile"
)

// InsertEvent stores ev unless an event with its id is already stored; the
// single INSERT … ON CONFLICT DO NOTHING both stores and detects the
// duplicate, so concurrent deliveries of one event store exactly one row.
func (d *DB) InsertEvent(ctx context.Context, ev reconcile.NewEvent) (inserted bool, err error) {
	res, err := d.x.ExecContext(ctx, `
		INSERT INTO stripe_webhook_events
			(id, type, api_version, stripe_created_at, livemode, source, status, subscription_id, payload, processed_at)
		VALUES ($1, $2, NULLIF($3, ''), $4, $5, $6, $7, NULLIF($8, ''), $9,
			CASE WHEN $7 = 'ignored' THEN now() END)
		ON CONFLICT (id) DO NOTHING`,
		ev.ID, ev.Type, ev.APIVersion, ev.Created, ev.Livemode, ev.Source, ev.Status, ev.SubscriptionID, []byte(ev.Payload))
	if err := d.observe("insert_event", err); err != nil {
		return false, fmt.Errorf("insert event %s: %w", ev.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("insert event %s: %w", ev.ID, err)
	}
	return n == 1, nil
}

// InsertEvents stores the events that are not stored yet, in one
// statement, and returns the ids it inserted. When it inserted any, it
// then notifies InboxChannel (outside the inserting transaction), so the
// appliers of every replica wake.
func (d *DB) InsertEvents(ctx context.Context, evs []reconcile.NewEvent) ([]string, error) {
	ids, err := d.insertEvents(ctx, evs)
	if err == nil && len(ids) > 0 {
		d.notify(ctx, InboxChannel)
	}
	return ids, err
}

// insertEvents stores the events not stored yet in one statement (their
// ids must differ) and returns the ids it inserted.
func (d *DB) insertEvents(ctx context.Context, evs []reconcile.NewEvent) ([]string, error) {
	return d.storeEvents(ctx, nil, evs, nil)
}

// insertEventsSQL stores the events of the JSON array in parameter param
// (see eventsDocument) that are not stored yet, and returns the ids it
// inserted. An event settled as it is stored comes with its final status,
// its one attempt and its reason.
func insertEventsSQL(param string) string {
	return `
		INSERT INTO stripe_webhook_events
			(id, type, api_version, stripe_created_at, livemode, source, status, subscription_id, payload,
			processed_at, attempts, last_error)
		SELECT e.id, e.type, NULLIF(e.api_version, ''), to_timestamp(e.created), e.livemode, e.source, e.status,
			NULLIF(e.subscription_id, ''), e.payload, CASE WHEN e.status IN ('applied', 'ignored') THEN now() END,
			COALESCE(e.attempts, 0), NULLIF(e.error, '')
		FROM jsonb_to_recordset(` + param + `::jsonb) AS e(id text, type text, api_version text,
			created double precision, livemode boolean, source text, status text, subscription_id text,
			payload jsonb, attempts int, error text)
		ON CONFLICT (id) DO NOTHING
		RETURNING id`
}

var insertEventsOnlySQL = insertEventsSQL("$1")

// storeEvents stores the events not stored yet in one statement run in tx,
// or on its own when tx is nil (their ids must differ), and returns the ids it inserted. With a
// Settlement, the same statement stores the settled events with their
// results and writes what they caused (see storeSettledSQL).
func (d *DB) storeEvents(ctx context.Context, tx *sqlx.Tx, evs []reconcile.NewEvent, s *reconcile.Settlement) ([]string, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	// In id order: two statements inserting overlapping ids in different
	// orders (a webhook batch and a catch-up page, say) would deadlock.
	evs = slices.SortedFunc(slices.Values(evs), func(a, b reconcile.NewEvent) int { return strings.Compare(a.ID, b.ID) })
	doc, err := eventsDocument(evs, s)
	if err != nil {
		return nil, fmt.Errorf("insert %d events: %w", len(evs), err)
	}
	var out []string
	op, query, args := "insert_events", insertEventsOnlySQL, []any{doc}
	if s != nil {
		op, query = "store_settled_events", storeSettledSQL
		rows, outbox, err := d.writeArgs(s.Write)
		if err != nil {
			return nil, fmt.Errorf("insert %d events: %w", len(evs), err)
		}
		args = []any{rows, outbox, doc}
	}
	err = d.selectIn(ctx, tx, &out, query, args...)
	if err := d.observe(op, err); err != nil {
		return nil, fmt.Errorf("insert %d events: %w", len(evs), err)
	}
	return out, nil
}

// eventsDocument renders events as one JSON array for insertEventsSQL,
// each payload spliced in as it came (it is already JSON): no per-event
// escaping in Go, one parse in Postgres. An event settled by s is rendered
// with its result.
func eventsDocument(evs []reconcile.NewEvent, s *reconcile.Settlement) (string, error) {
	type head struct {
		ID             string  `json:"id"`
		Type           string  `json:"type"`
		APIVersion     string  `json:"api_version"`
		Created        float64 `json:"created"` // Unix seconds: any year Postgres takes
		Livemode       bool    `json:"livemode"`
		Source         string  `json:"source"`
		Status         string  `json:"status"`
		SubscriptionID string  `json:"subscription_id"`
		Attempts       int     `json:"attempts,omitempty"`
		Error          string  `json:"error,omitempty"`
	}
	size := 2
	for _, ev := range evs {
		size += len(ev.Payload) + 256
	}
	var b strings.Builder
	b.Grow(size)
	b.WriteByte('[')
	for i, ev := range evs {
		created := float64(ev.Created.UnixMicro()) / 1e6
		h := head{ID: ev.ID, Type: ev.Type, APIVersion: ev.APIVersion, Created: created, Livemode: ev.Livemode,
			Source: ev.Source, Status: ev.Status, SubscriptionID: ev.SubscriptionID}
		if r, ok := s.Result(ev.ID); ok {
			h.Status, h.Attempts, h.Error = r.Status, 1, truncate(r.Error, 2000)
			h.SubscriptionID = cmp.Or(h.SubscriptionID, r.SubscriptionID)
		}
		hb, err := json.Marshal(h)
		if err != nil {
			return "", err
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(hb[:len(hb)-1])
		b.WriteString(`,"payload":`)
		b.Write(ev.Payload)
		b.WriteByte('}')
	}
	b.WriteByte(']')
	return b.String(), nil
}

// EventIDsStored returns which of ids are already in the inbox.
func (d *DB) EventIDsStored(ctx context.Context, ids []string) (map[string]bool, error) {
	var found []string
	err := d.x.SelectContext(ctx, &found, `SELECT id FROM stripe_webhook_events WHERE id = ANY($1)`, pq.Array(ids))
	if err := d.observe("select_event_ids", err); err != nil {
		return nil, fmt.Errorf("look up %d event ids: %w", len(ids), err)
	}
	m := make(map[string]bool, len(found))
	for _, id := range found {
		m[id] = true
	}
	return m, nil
}

// InboxStats is the state of the inbox for metrics.
type InboxStats struct {
	Pending   int           `db:"pending"`
	Dead      int           `db:"dead"`
	OldestAge time.Duration `db:"-"`
}

// inboxStatsSQL reads the inbox gauges. Each part reads one partial index:
// waiting events through the claim's, dead ones through
// stripe_webhook_events_dead_idx; none reads the applied and ignored
// events, however many the inbox keeps.
const inboxStatsSQL = `
	SELECT
		(SELECT count(*) FROM stripe_webhook_events WHERE status IN ('pending', 'failed')) AS pending,
		(SELECT count(*) FROM stripe_webhook_events WHERE status = 'dead') AS dead,
		(SELECT extract(epoch FROM now() - min(received_at)) FROM stripe_webhook_events
			WHERE status IN ('pending', 'failed')) AS oldest`

// InboxStats counts waiting and dead events and the age of the oldest
// waiting one.
func (d *DB) InboxStats(ctx context.Context) (InboxStats, error) {
	var row struct {
		Pending int             `db:"pending"`
		Dead    int             `db:"dead"`
		Oldest  sql.NullFloat64 `db:"oldest"`
	}
	err := d.x.GetContext(ctx, &row, inboxStatsSQL)
	if err := d.observe("inbox_stats", err); err != nil {
		return InboxStats{}, fmt.Errorf("inbox stats: %w", err)
	}
	st := InboxStats{Pending: row.Pending, Dead: row.Dead}
	if row.Oldest.Valid {
		st.OldestAge = time.Duration(row.Oldest.Float64 * float64(time.Second))
	}
	return st, nil
}

// EventRow is a stored inbox event as tests and tools read it.
type EventRow struct {
	reconcile.ClaimedEvent
	Status      string         `db:"status"`
	LastError   sql.NullString `db:"last_error"`
	ProcessedAt sql.NullTime   `db:"processed_at"`
	Livemode    bool           `db:"livemode"`
}

// GetEvent reads one stored event.
func (d *DB) GetEvent(ctx context.Context, id string) (EventRow, error) {
	var r EventRow
	err := d.x.GetContext(ctx, &r, `
		SELECT id, type, api_version, stripe_created_at, source, attempts, subscription_id, received_at,
			payload, status, last_error, processed_at, livemode
		FROM stripe_webhook_events WHERE id = $1`, id)
	if err == sql.ErrNoRows {
		return r, fmt.Errorf("event %s: %w", id, ErrNotFound)
	}
	if err := d.observe("get_event", err); err != nil {
		return r, fmt.Errorf("get event %s: %w", id, err)
	}
	return r, nil
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return strings.ToValidUTF8(s, "")
	}
	return strings.ToValidUTF8(s[:n], "")
}
