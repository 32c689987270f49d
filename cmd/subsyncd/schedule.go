package main

import (
	"context"

	"github.com/subsync/subsync/reconcile"
)

// scheduler runs the reconciliation jobs on their cron schedules.
type scheduler struct {
	s *reconcile.Scheduler // nil when every job is disabled
}

// startScheduler schedules the events catch-up and the subscription sweep
// (an empty schedule disables a job). In the daemon, caught-up events are
// applied by the inbox workers, which the insert wakes through NOTIFY.
func (a *app) startScheduler(ctx context.Context) (*scheduler, error) {
	s := reconcile.NewScheduler(ctx, reconcile.ScheduleConfig{Logger: a.log, Metrics: a.metrics}, a.reconciler(nil))
	if err := s.Add(reconcile.JobEvents, a.cfg.EventsSchedule); err != nil {
		return nil, usageError{err}
	}
	if err := s.Add(reconcile.JobSubscriptions, a.cfg.SubscriptionsSchedule); err != nil {
		return nil, usageError{err}
	}
	if a.cfg.EventsSchedule == "" && a.cfg.SubscriptionsSchedule == "" {
		return &scheduler{}, nil
	}
	s.Start()
	return &scheduler{s: s}, nil
}

// stop stops scheduling and waits for running jobs until ctx ends, then
// cancels them.
func (s *scheduler) stop(ctx context.Context) {
	if s.s != nil {
		s.s.Stop(ctx)
	}
}
