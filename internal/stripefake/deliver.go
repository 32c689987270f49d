package stripefake

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// DeliverOptions shape a DeliverAll run.
type DeliverOptions struct {
	// Shuffle sends in random order instead of oldest first.
	Shuffle bool
	// DuplicateRate is the probability that a delivery is sent twice.
	DuplicateRate float64
	// DropRate is the probability that a delivery is lost: never sent and
	// no longer pending (the event stays listed in /v1/events).
	DropRate float64
	// Concurrency is the number of deliveries in flight; 1 when 0.
	Concurrency int
	// RetryLikeStripe retries a non-2xx answer or a transport error with a
	// doubling backoff, up to MaxAttempts attempts in all.
	RetryLikeStripe bool
	// MaxAttempts bounds the attempts per delivery with RetryLikeStripe; 4
	// when 0.
	MaxAttempts int
	// RetryBackoff is the first backoff; 10ms when 0.
	RetryBackoff time.Duration
	// SignedAt gives the signature time; time.Now when nil (receivers check
	// it against their own clock).
	SignedAt func() time.Time
}

// DeliverStats are the figures of a DeliverAll run.
type DeliverStats struct {
	// Sent is the number of HTTP requests made (duplicates and retries
	// included).
	Sent int
	// Delivered is the number of (event, endpoint) pairs answered 2xx.
	Delivered int
	// Duplicates is the number of extra copies sent.
	Duplicates int
	// Dropped is the number of deliveries lost on purpose.
	Dropped int
	// Retries is the number of retry attempts.
	Retries int
	// Non2xx is the number of answers that were not 2xx.
	Non2xx int
	// Errors is the number of transport errors.
	Errors int
	// Failed is the number of deliveries that never got a 2xx; they stay
	// pending for the next run.
	Failed int
}

// DeliverAll sends every pending (event, endpoint) delivery, oldest first
// unless opts.Shuffle, and returns the figures. It stops early, returning
// ctx's error, when ctx ends.
func (s *Server) DeliverAll(ctx context.Context, opts DeliverOptions) (DeliverStats, error) {
	var st DeliverStats
	jobs := s.pendingDeliveries(opts, &st)
	signedAt := opts.SignedAt
	if signedAt == nil {
		signedAt = time.Now
	}
	workers := max(opts.Concurrency, 1)
	ch := make(chan delivery)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for d := range ch {
				r := s.deliverWithRetry(ctx, d, opts, signedAt)
				mu.Lock()
				st.Sent += r.Sent
				st.Retries += r.Retries
				st.Non2xx += r.Non2xx
				st.Errors += r.Errors
				if !d.duplicate {
					st.Delivered += r.Delivered
					st.Failed += r.Failed
				}
				mu.Unlock()
			}
		})
	}
	var err error
feed:
	for _, d := range jobs {
		select {
		case ch <- d:
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(ch)
	wg.Wait()
	return st, err
}

// pendingDeliveries collects the deliveries owed, applying drops,
// duplicates and shuffling; dropped ones stop being pending.
func (s *Server) pendingDeliveries(opts DeliverOptions, st *DeliverStats) []delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	var jobs []delivery
	for s.pendingFrom < len(s.eventLog) && len(s.eventLog[s.pendingFrom].pending) == 0 {
		s.pendingFrom++ // everything before is delivered or dropped
	}
	for _, e := range s.eventLog[s.pendingFrom:] {
		for _, ep := range s.endpoints {
			if !e.pending[ep.ID] {
				continue
			}
			if opts.DropRate > 0 && s.rnd.Float64() < opts.DropRate {
				st.Dropped++
				delete(e.pending, ep.ID)
				continue
			}
			d := delivery{eventID: e.id, ep: ep, payload: s.renderLocked(e, derefStr(ep.APIVersion))}
			jobs = append(jobs, d)
			if opts.DuplicateRate > 0 && s.rnd.Float64() < opts.DuplicateRate {
				st.Duplicates++
				dup := d
				dup.duplicate = true
				jobs = append(jobs, dup)
			}
		}
	}
	if opts.Shuffle {
		s.rnd.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	}
	return jobs
}

// deliverWithRetry sends one delivery, retrying when asked, and reports it.
func (s *Server) deliverWithRetry(ctx context.Context, d delivery, opts DeliverOptions, signedAt func() time.Time) DeliverStats {
	var r DeliverStats
	attempts := 1
	if opts.RetryLikeStripe {
		attempts = opts.MaxAttempts
		if attempts <= 0 {
			attempts = 4
		}
	}
	backoff := opts.RetryBackoff
	if backoff <= 0 {
		backoff = 10 * time.Millisecond
	}
	for a := 0; a < attempts; a++ {
		if a > 0 {
			r.Retries++
			t := time.NewTimer(backoff + rand.N(backoff/2+1))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				r.Failed++
				return r
			}
			backoff *= 2
		}
		code, err := s.post(ctx, d, signedAt())
		r.Sent++
		switch {
		case err != nil:
			r.Errors++
		case code < 200 || code >= 300:
			r.Non2xx++
		default:
			r.Delivered++
			s.markDelivered(d)
			return r
		}
	}
	r.Failed++
	return r
}

// AutoDeliver delivers events as they are created, like Stripe: it runs
// DeliverAll whenever new deliveries are owed, and every retryEvery (1s when
// 0) for those that failed, until ctx ends; then it returns nil.
func (s *Server) AutoDeliver(ctx context.Context, opts DeliverOptions, retryEvery time.Duration) error {
	if retryEvery <= 0 {
		retryEvery = time.Second
	}
	tick := time.NewTicker(retryEvery)
	defer tick.Stop()
	for {
		st, err := s.DeliverAll(ctx, opts)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil || st.Failed > 0 {
			s.log.Warn("stripefake webhook delivery", "failed", st.Failed, "non_2xx", st.Non2xx,
				"transport_errors", st.Errors, "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.notify:
		case <-tick.C:
		}
	}
}
