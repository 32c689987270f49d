package chaos

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// chaosConfig is the size of a run, from the CHAOS_* variables (see doc.go).
type chaosConfig struct {
	subscriptions int
	changes       int
	faults        int
	pace          time.Duration
	seed          uint64
	converge      time.Duration
	sweep         string
	mode          string // WEBHOOK_APPLY_MODE
}

func loadConfig(t *testing.T) chaosConfig {
	t.Helper()
	c := chaosConfig{
		subscriptions: envInt(t, "CHAOS_SUBSCRIPTIONS", 20),
		changes:       envInt(t, "CHAOS_CHANGES", 150),
		converge:      envDuration(t, "CHAOS_CONVERGE_TIMEOUT", 5*time.Minute),
		sweep:         os.Getenv("CHAOS_SWEEP_SCHEDULE"),
		mode:          os.Getenv("CHAOS_APPLY_MODE"),
	}
	switch c.mode {
	case "":
		c.mode = "refetch"
	case "refetch", "payload":
	default:
		t.Fatalf("CHAOS_APPLY_MODE: %q is neither refetch nor payload", c.mode)
	}
	c.faults = envInt(t, "CHAOS_FAULTS", max(5, c.changes/100))
	pace := 100 * time.Millisecond
	if c.changes > 300 {
		pace = 50 * time.Millisecond
	}
	c.pace = envDuration(t, "CHAOS_PACE", pace)
	c.seed = uint64(envInt(t, "CHAOS_SEED", int(rand.Uint32()|1)))
	if c.subscriptions < 1 || c.changes < 1 || c.faults < 0 {
		t.Fatalf("CHAOS_SUBSCRIPTIONS and CHAOS_CHANGES must be at least 1, CHAOS_FAULTS at least 0")
	}
	return c
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s: %q is not an integer", name, v)
	}
	return n
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		t.Fatalf("%s: %q is not a duration", name, v)
	}
	return d
}
