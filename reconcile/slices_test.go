package reconcile

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// listItem is a subscription as the fake lister below sees it.
type listItem struct {
	created int64
	id      string
}

// pageOf answers like Stripe: items created in [lo, hi), newest first (ties
// by id, descending), strictly after the cursor, up to limit, and whether
// more follow.
func pageOf(items []listItem, lo, hi int64, after string, limit int) ([]listItem, bool) {
	var out []listItem
	started := after == ""
	for i := len(items) - 1; i >= 0; i-- { // items sorted ascending
		it := items[i]
		if !started {
			started = it.id == after
			continue
		}
		if it.created < lo || it.created >= hi {
			continue
		}
		if len(out) == limit {
			return out, true
		}
		out = append(out, it)
	}
	return out, false
}

// walkAll lists items with the slicer and workers goroutines, as the
// sweep does, and returns every id listed and the number of requests.
func walkAll(items []listItem, lo, hi int64, workers, limit int) ([]string, int) {
	sl := newSlicer(firstSlices(lo, hi))
	var mu sync.Mutex
	var seen []string
	requests := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				cur, ok := sl.next()
				if !ok {
					return
				}
				for {
					page, more := pageOf(items, cur.lo, cur.hi, cur.after, limit)
					mu.Lock()
					requests++
					for _, it := range page {
						seen = append(seen, it.id)
					}
					mu.Unlock()
					if !more || len(page) == 0 {
						break
					}
					last := page[len(page)-1]
					cur = sl.advance(cur, page[0].created, last.created, last.id)
				}
				sl.done()
			}
		})
	}
	wg.Wait()
	return seen, requests
}

func TestSlicerListsEachItemExactlyOnce(t *testing.T) {
	const lo, hi = 1_000_000, 1_100_000
	rnd := rand.New(rand.NewPCG(1, 2))
	shapes := map[string]func(i int) int64{
		"uniform":        func(i int) int64 { return lo + rnd.Int64N(hi-lo) },
		"one second":     func(i int) int64 { return lo + 500 },
		"recent burst":   func(i int) int64 { return hi - 1 - rnd.Int64N(300) },
		"two clusters":   func(i int) int64 { return []int64{lo + 10, hi - 10}[i%2] + rnd.Int64N(5) },
		"ten per second": func(i int) int64 { return lo + int64(i/10) },
	}
	for name, created := range shapes {
		for _, workers := range []int{1, 3, 16} {
			for _, n := range []int{0, 1, 99, 100, 101, 2345} {
				t.Run(fmt.Sprintf("%s/%d workers/%d items", name, workers, n), func(t *testing.T) {
					items := make([]listItem, n)
					for i := range items {
						items[i] = listItem{created: created(i), id: fmt.Sprintf("sub_%06d", i)}
					}
					slices.SortFunc(items, func(a, b listItem) int {
						return cmp.Or(cmp.Compare(a.created, b.created), cmp.Compare(a.id, b.id))
					})
					seen, requests := walkAll(items, lo, hi, workers, 100)
					if len(seen) != n {
						t.Fatalf("listed %d items, want %d", len(seen), n)
					}
					slices.Sort(seen)
					if len(slices.Compact(seen)) != n {
						t.Fatal("an item was listed twice")
					}
					if minimum := n/100 + 1; requests > 2*minimum+4*workers+10 {
						t.Fatalf("%d requests for %d items with %d workers", requests, n, workers)
					}
				})
			}
		}
	}
}

// simulate lists items in rounds of one request latency, as the sweep does
// with workers goroutines behind a limiter that lets perRound requests go
// per round (10 for 100 ms latency at 100/s). It returns the requests sent,
// the rounds taken and the items listed.
func simulate(items []listItem, lo, hi int64, workers, perRound int) (requests, rounds, listed int) {
	type worker struct {
		cur  createdSlice
		busy bool
	}
	queue := firstSlices(lo, hi)
	ws := make([]worker, workers)
	start := 0
	for {
		busy := 0
		for i := range ws {
			if !ws[i].busy && len(queue) > 0 {
				ws[i], queue = worker{cur: queue[0], busy: true}, queue[1:]
			}
			if ws[i].busy {
				busy++
			}
		}
		if busy == 0 {
			return requests, rounds, listed
		}
		rounds++
		sent := 0
		for k := range ws {
			i := (start + k) % len(ws)
			if !ws[i].busy || sent == perRound {
				continue
			}
			sent++
			requests++
			cur := ws[i].cur
			page, more := pageOf(items, cur.lo, cur.hi, cur.after, 100)
			listed += len(page)
			if !more || len(page) == 0 {
				ws[i].busy = false
				continue
			}
			idle := len(queue)
			for _, w := range ws {
				if !w.busy {
					idle++
				}
			}
			idle -= 2 * len(queue)
			last := page[len(page)-1]
			cont, pieces := split(cur, page[0].created, last.created, last.id, idle)
			queue = append(queue, pieces...)
			ws[i].cur = cont
		}
		start++
	}
}

// TestSlicerKeepsTheLimiterBusy checks, by simulation, that the listing
// wastes few requests and keeps enough requests in flight to use most of
// the limiter, for several shapes of accounts.
func TestSlicerKeepsTheLimiterBusy(t *testing.T) {
	const now = 1_800_000_000
	const epoch = 1_262_304_000 // 2010-01-01, the sweep's default
	const year = 365 * 24 * 3600
	rnd := rand.New(rand.NewPCG(3, 4))
	shapes := []struct {
		name    string
		created func() int64
	}{
		{"uniform over 3 years", func() int64 { return now - rnd.Int64N(3*year) }},
		{"growing over 8 years", func() int64 { return now - int64(8*year*(1-math.Sqrt(rnd.Float64()))) }},
		{"half in the last month", func() int64 {
			if rnd.IntN(2) == 0 {
				return now - rnd.Int64N(year/12)
			}
			return now - rnd.Int64N(5*year)
		}},
	}
	for _, sh := range shapes {
		for _, c := range []struct {
			n                 int
			maxWaste, minBusy float64 // requests over the minimum; share of the ceiling
		}{{250, 4, 0.4}, {10_000, 0.25, 0.6}, {100_000, 0.08, 0.90}} {
			n := c.n
			t.Run(fmt.Sprintf("%s/%d", sh.name, n), func(t *testing.T) {
				items := make([]listItem, n)
				for i := range items {
					items[i] = listItem{created: sh.created(), id: fmt.Sprintf("sub_%07d", i)}
				}
				slices.SortFunc(items, func(a, b listItem) int {
					return cmp.Or(cmp.Compare(a.created, b.created), cmp.Compare(a.id, b.id))
				})
				requests, rounds, listed := simulate(items, epoch, now+1, 24, 10) // the default workers
				minPages := (n + 99) / 100
				ideal := (minPages + 9) / 10
				t.Logf("%d requests for %d pages (%.1f%% more), %d rounds for %d ideal: %.1f%% of the limiter's ceiling",
					requests, minPages, 100*float64(requests-minPages)/float64(minPages), rounds, ideal, 100*float64(ideal)/float64(rounds))
				if listed != n {
					t.Fatalf("listed %d of %d", listed, n)
				}
				if float64(requests) > (1+c.maxWaste)*float64(minPages) {
					t.Errorf("%d requests for %d pages", requests, minPages)
				}
				if float64(ideal) < c.minBusy*float64(rounds) {
					t.Errorf("%d rounds, ideal %d", rounds, ideal)
				}
			})
		}
	}
}
