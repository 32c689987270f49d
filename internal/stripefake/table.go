package stripefake

import (
	"cmp"
	"math"
	"slices"
	"sort"
)

// record is an object kept in a table: it sorts by creation time, then id.
type record interface {
	sortKey() (created int64, id string)
}

// table keeps records sorted oldest first (so that new records, which are
// usually the newest, append) with an id → record map. Lists walk it
// backwards to answer newest first without sorting per request; a cursor is
// found again by binary search, so inserting in the middle (several records
// in one second) costs a memmove and no reindexing.
type table[T record] struct {
	noun string // "subscription", for error messages
	rows []T
	byID map[string]T
	bulk bool // rows unsorted until endBulk
}

func newTable[T record](noun string) *table[T] {
	return &table[T]{noun: noun, byID: map[string]T{}}
}

func compareRecords[T record](a, b T) int {
	ac, aid := a.sortKey()
	bc, bid := b.sortKey()
	return cmp.Or(cmp.Compare(ac, bc), cmp.Compare(aid, bid))
}

// get returns the record with that id.
func (t *table[T]) get(id string) (T, bool) {
	v, ok := t.byID[id]
	return v, ok
}

// position returns the index of the record with that id.
func (t *table[T]) position(id string) (int, bool) {
	v, ok := t.byID[id]
	if !ok {
		return 0, false
	}
	return slices.BinarySearchFunc(t.rows, v, compareRecords[T])
}

// insert adds one record at its sorted place.
func (t *table[T]) insert(v T) {
	_, id := v.sortKey()
	t.byID[id] = v
	n := len(t.rows)
	if t.bulk || n == 0 || compareRecords(t.rows[n-1], v) < 0 {
		t.rows = append(t.rows, v)
		return
	}
	i, _ := slices.BinarySearchFunc(t.rows, v, compareRecords[T])
	t.rows = slices.Insert(t.rows, i, v)
}

// reserve makes room for n more records.
func (t *table[T]) reserve(n int) {
	t.rows = slices.Grow(t.rows, n)
	if len(t.byID) == 0 {
		t.byID = make(map[string]T, n)
	}
}

// beginBulk makes inserts append without keeping order, until endBulk
// sorts once; lists must not run in between (callers hold the write lock).
func (t *table[T]) beginBulk() { t.bulk = true }

// endBulk restores the order after beginBulk.
func (t *table[T]) endBulk() {
	t.bulk = false
	slices.SortFunc(t.rows, compareRecords[T])
}

// len returns the number of records.
func (t *table[T]) len() int { return len(t.rows) }

// pageQuery is the part of a list request that is common to every list.
type pageQuery struct {
	limit         int
	startingAfter string
	endingBefore  string
	minCreated    int64 // inclusive
	maxCreated    int64 // inclusive
}

// newPageQuery returns a query for the first page of the given size, with no
// created bounds.
func newPageQuery(limit int) pageQuery {
	return pageQuery{limit: limit, minCreated: math.MinInt64, maxCreated: math.MaxInt64}
}

// page answers a list request with Stripe's semantics: newest first; after
// starting_after (older) or before ending_before (newer); only records match
// accepts and whose created lies in the bounds; has_more tells whether one
// more match exists past the page in the direction walked.
func (t *table[T]) page(q pageQuery, match func(T) bool) ([]T, bool, error) {
	created := func(i int) int64 { c, _ := t.rows[i].sortKey(); return c }
	n := len(t.rows)
	lo := sort.Search(n, func(i int) bool { return created(i) >= q.minCreated })
	hi := sort.Search(n, func(i int) bool { return created(i) > q.maxCreated }) - 1
	out := make([]T, 0, min(q.limit, max(hi-lo+1, 0)))
	accept := func(i int) bool { return match == nil || match(t.rows[i]) }

	if q.endingBefore != "" {
		p, ok := t.position(q.endingBefore)
		if !ok {
			return nil, false, cursorMissing(t.noun, q.endingBefore, "ending_before")
		}
		i := max(p+1, lo)
		for ; i <= hi && len(out) < q.limit; i++ {
			if accept(i) {
				out = append(out, t.rows[i])
			}
		}
		more := false
		for ; i <= hi; i++ {
			if accept(i) {
				more = true
				break
			}
		}
		slices.Reverse(out)
		return out, more, nil
	}

	i := hi
	if q.startingAfter != "" {
		p, ok := t.position(q.startingAfter)
		if !ok {
			return nil, false, cursorMissing(t.noun, q.startingAfter, "starting_after")
		}
		i = min(p-1, hi)
	}
	for ; i >= lo && len(out) < q.limit; i-- {
		if accept(i) {
			out = append(out, t.rows[i])
		}
	}
	for ; i >= lo; i-- {
		if accept(i) {
			return out, true, nil
		}
	}
	return out, false, nil
}

// newestFirst returns every record, newest first.
func (t *table[T]) newestFirst() []T {
	out := slices.Clone(t.rows)
	slices.Reverse(out)
	return out
}
