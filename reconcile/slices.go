package reconcile

import "sync"

// createdSlice is a part of the subscription listing: the subscriptions
// created in [lo, hi) (Unix seconds), walked newest first from just after
// the subscription after ("" starts at the newest).
type createdSlice struct {
	lo, hi int64
	after  string
}

// slicer hands slices of the created range to the sweep's workers. Stripe
// lists newest first and pages only by cursor, so one listing is
// sequential; but a walk over [lo, hi) that has reached created time c can
// give the part [lo, c) to other workers and carry on over [.., c] with its
// cursor, since everything in [lo, c) still lies ahead of the cursor. The
// slicer does that whenever workers are idle, so the number of walks in
// flight adapts to how subscriptions are spread in time, without knowing
// the account's oldest subscription.
type slicer struct {
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []createdSlice
	active int // workers walking a slice
	idle   int // workers waiting for one
	closed bool
}

// newSlicer starts with slices, in the order workers take them.
func newSlicer(slices []createdSlice) *slicer {
	s := &slicer{queue: slices}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// firstSlices cuts [lo, hi) into slices that double in length going back
// in time from a day before hi: every worker has one at once, the recent
// ones (often the densest) are narrow, and the span before the account's
// first subscription costs a request or two, not a search.
func firstSlices(lo, hi int64) []createdSlice {
	const day = 24 * 60 * 60
	var out []createdSlice
	top, width := hi, int64(day)
	for top-width > lo {
		out = append(out, createdSlice{lo: top - width, hi: top})
		top -= width
		width *= 2
	}
	return append(out, createdSlice{lo: lo, hi: top})
}

// next blocks until a slice is available and returns it, or returns false
// when the listing is complete or aborted. A worker that got a slice must
// call done when it has walked it.
func (s *slicer) next() (createdSlice, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case s.closed:
			return createdSlice{}, false
		case len(s.queue) > 0:
			sl := s.queue[0]
			s.queue = s.queue[1:]
			s.active++
			return sl, true
		case s.active == 0:
			s.closed = true
			s.cond.Broadcast()
			return createdSlice{}, false
		}
		s.idle++
		s.cond.Wait()
		s.idle--
	}
}

// minPiecePages is the least number of pages a piece cut off for another
// worker should hold, judging by the density of the page just read: every
// piece ends with a partial page, so smaller pieces waste requests.
const minPiecePages = 4

// advance returns where the walk of cur goes on after a full page whose
// subscriptions were created from firstCreated down to lastCreated, the
// last one with id lastID. When workers wait, the older part of what
// remains is first cut into pieces for them.
func (s *slicer) advance(cur createdSlice, firstCreated, lastCreated int64, lastID string) createdSlice {
	s.mu.Lock()
	defer s.mu.Unlock()
	cont, pieces := split(cur, firstCreated, lastCreated, lastID, s.idle-len(s.queue))
	if len(pieces) > 0 {
		s.queue = append(s.queue, pieces...)
		s.cond.Broadcast()
	}
	return cont
}

// split returns the continuation of cur after a full page (see advance)
// and, when idle workers wait, up to idle pieces of [cur.lo, lastCreated)
// cut in whole seconds, each expected to hold minPiecePages pages if
// subscriptions are as dense there as on the page; the continuation keeps
// the newest piece and the cursor.
func split(cur createdSlice, firstCreated, lastCreated int64, lastID string, idle int) (createdSlice, []createdSlice) {
	cont := createdSlice{lo: cur.lo, hi: min(cur.hi, lastCreated+1), after: lastID}
	span := lastCreated - cur.lo
	if idle <= 0 || span < 2 {
		return cont, nil
	}
	perPage := max(firstCreated-lastCreated, 1) // seconds a page covers here
	n := min(int64(idle)+1, span/perPage/minPiecePages, span)
	if n < 2 {
		return cont, nil
	}
	bound := func(i int64) int64 { return cur.lo + span*i/n }
	pieces := make([]createdSlice, 0, n-1)
	for i := range n - 1 {
		pieces = append(pieces, createdSlice{lo: bound(i), hi: bound(i + 1)})
	}
	cont.lo = bound(n - 1)
	return cont, pieces
}

// done tells that a worker finished its slice.
func (s *slicer) done() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if s.active == 0 && len(s.queue) == 0 {
		s.cond.Broadcast()
	}
}

// abort ends the listing: every waiting and future next returns false.
func (s *slicer) abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.cond.Broadcast()
}
