package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/subsync/subsync/metrics"
)

// cronParser parses schedules: five fields with an optional leading
// seconds field, or a descriptor such as @every 5m or @daily.
func cronParser() cron.Parser {
	return cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// ParseSchedule parses a cron spec as the scheduler does.
func ParseSchedule(spec string) (cron.Schedule, error) { return cronParser().Parse(spec) }

// ScheduleConfig configures a Scheduler.
type ScheduleConfig struct {
	Logger   *slog.Logger
	Metrics  *metrics.Metrics // nil: no metrics
	Location *time.Location   // time zone of the schedules; time.Local when nil
	// StopGrace is how long Stop waits for cancelled runs to record their
	// end once its own context is done; 15s.
	StopGrace time.Duration
}

// Scheduler runs reconciliation jobs on cron schedules. Every replica runs
// one; each run takes the job's leader lock, so a tick runs the job once
// across replicas and the others count it as skipped. A tick that comes
// while the previous run of the job still runs in this process is skipped.
type Scheduler struct {
	cron   *cron.Cron
	rec    *Reconciler
	cfg    ScheduleConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
}

// NewScheduler builds a Scheduler whose runs use ctx (cancelled when Stop
// gives up waiting).
func NewScheduler(ctx context.Context, cfg ScheduleConfig, rec *Reconciler) *Scheduler {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 15 * time.Second
	}
	cl := cronLogger{log: log.With("component", "cron")}
	c := cron.New(
		cron.WithParser(cronParser()),
		cron.WithLocation(cfg.Location),
		cron.WithLogger(cl),
		cron.WithChain(cron.Recover(cl), cron.SkipIfStillRunning(cl)),
	)
	ctx, cancel := context.WithCancel(ctx)
	return &Scheduler{cron: c, rec: rec, cfg: cfg, log: log, ctx: ctx, cancel: cancel}
}

// Add schedules job on spec; an empty spec disables the job.
func (s *Scheduler) Add(job, spec string) error {
	if spec == "" {
		s.setInterval(job, 0)
		s.log.Info("reconcile job disabled (empty schedule)", "job", job)
		return nil
	}
	sched, err := ParseSchedule(spec)
	if err != nil {
		return fmt.Errorf("schedule of %s: %q: %w", job, spec, err)
	}
	interval := Interval(sched, time.Now().In(s.cfg.Location))
	s.setInterval(job, interval)
	s.cron.Schedule(sched, cron.FuncJob(func() {
		// Run logs and counts the outcome itself.
		_, _ = s.rec.Run(s.ctx, job, Options{})
	}))
	s.log.Info("reconcile job scheduled", "job", job, "schedule", spec,
		"next", sched.Next(time.Now().In(s.cfg.Location)), "interval_seconds", interval.Seconds())
	return nil
}

// Interval is the time between two activations of sched after now: what
// the staleness alert compares the last success with. For a schedule whose
// gaps differ (0 3,4 * * *), it is the longest gap among the next 64
// activations, so that the alert never fires between two normal runs.
func Interval(sched cron.Schedule, now time.Time) time.Duration {
	var longest time.Duration
	prev := sched.Next(now)
	for range 64 {
		if prev.IsZero() {
			break
		}
		next := sched.Next(prev)
		if next.IsZero() {
			break
		}
		longest = max(longest, next.Sub(prev))
		prev = next
	}
	return longest
}

func (s *Scheduler) setInterval(job string, d time.Duration) {
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.ReconcileInterval.WithLabelValues(job).Set(d.Seconds())
	}
}

// Start starts scheduling in the background.
func (s *Scheduler) Start() {
	s.rec.LoadLastSuccess(s.ctx)
	s.cron.Start()
}

// Stop stops scheduling and waits for running jobs. When ctx ends first,
// the running jobs are cancelled (they record their run as failed) and
// waited for up to StopGrace more.
func (s *Scheduler) Stop(ctx context.Context) {
	done := s.cron.Stop().Done()
	select {
	case <-done:
		s.cancel()
		return
	case <-ctx.Done():
	}
	s.log.Warn("reconcile jobs still running at shutdown; cancelling them")
	s.cancel()
	t := time.NewTimer(s.cfg.StopGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.log.Error("reconcile jobs did not stop in time")
	}
}

// cronLogger adapts slog to cron.Logger. cron's routine messages (wake,
// run, skip) go to debug.
type cronLogger struct{ log *slog.Logger }

// Info implements cron.Logger.
func (l cronLogger) Info(msg string, keysAndValues ...any) {
	l.log.Debug("cron: "+msg, keysAndValues...)
}

// Error implements cron.Logger.
func (l cronLogger) Error(err error, msg string, keysAndValues ...any) {
	l.log.Error("cron: "+msg, append(keysAndValues, "err", err.Error())...)
}
