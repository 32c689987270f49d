package db_test

import (
	"context"
	"strings"
	"testing"

	"github.com/subsync/subsync/db"
)

// TestOpenNamesTheURLField shows that Open refuses a URL it cannot use
// before connecting, naming its Config field (the caller names the
// setting) and never the password.
func TestOpenNamesTheURLField(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		{"", "db: Config.URL: empty"},
		{"postgres://u:topsecretpw@127.0.0.1:port/x", "db: Config.URL: not a valid postgres URL"},
		{"mysql://u:topsecretpw@127.0.0.1/x", "db: Config.URL: not a valid postgres URL"},
	} {
		d, err := db.Open(context.Background(), db.Config{URL: c.url})
		if err == nil {
			d.Close()
			t.Fatalf("Open(%q) succeeded", c.url)
		}
		if msg := err.Error(); !strings.Contains(msg, c.want) || strings.Contains(msg, "topsecretpw") || strings.Contains(msg, "DATABASE_URL") {
			t.Errorf("Open(%q) = %q, want an error containing %q, without the password or a variable name", c.url, msg, c.want)
		}
		if err := db.CheckURL(c.url); err == nil {
			t.Errorf("CheckURL(%q) = nil", c.url)
		}
	}
	if err := db.CheckURL("postgresql://u:pw@127.0.0.1:5432/x?sslmode=disable"); err != nil {
		t.Errorf("CheckURL of a good URL: %v", err)
	}
}
