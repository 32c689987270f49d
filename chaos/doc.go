// Package chaos holds the fault-injection scenario of subsyncd (TestChaos in
// chaos_test.go): the real binary runs `serve` as a child process against a
// throwaway Postgres cluster and a throwaway Redis, with the stateful Stripe
// fake as Stripe, while a long history of subscription changes is delivered
// shuffled, duplicated, dropped and retried, and Stripe errors, Postgres
// restarts and crashes, SIGKILLs of the daemon and Redis outages are
// injected. At the end every acknowledged event must be stored, every row
// must equal Stripe field by field, every handled event must be in the inbox
// and applied, and every cache invalidation must be delivered.
//
// The default size runs in `make test`; `make chaos` (scripts/chaos.sh) runs
// the full size. Sizes come from the environment:
//
//	CHAOS_SUBSCRIPTIONS    subscriptions created before the changes (20)
//	CHAOS_CHANGES          changes made in Stripe (150)
//	CHAOS_FAULTS           daemon, Postgres and Redis faults (changes/100, at least 5)
//	CHAOS_PACE             pause between two changes (100ms; 50ms above 300 changes)
//	CHAOS_SEED             seed of the fake and of the history (random, printed)
//	CHAOS_CONVERGE_TIMEOUT how long convergence may take at the end (5m)
//	CHAOS_SWEEP_SCHEDULE   RECONCILE_SUBSCRIPTIONS_SCHEDULE of the daemon ("": no sweep)
//	CHAOS_APPLY_MODE       WEBHOOK_APPLY_MODE of the daemon (refetch; make test also runs payload)
//	CHAOS_KEEP_LOG         file to copy the daemon's log to at the end
package chaos
