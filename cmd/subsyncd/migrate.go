package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

func runMigrate(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	n := need{db: true}
	cfg, rest, err := parseConfig("migrate", args, env, stderr, n, nil)
	if err != nil {
		return err
	}
	if len(rest) > 1 || (len(rest) == 1 && rest[0] != "status") {
		return usagef("migrate takes no argument but \"status\", got %q", rest)
	}
	a, err := newApp(ctx, cfg, n, false, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	if len(rest) == 1 {
		st, err := a.db.MigrationStatuses(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tNAME\tSTATE\tAPPLIED AT")
		for _, s := range st {
			state, at := "pending", ""
			if s.Applied {
				state, at = "applied", s.AppliedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Version, s.Name, state, at)
		}
		return tw.Flush()
	}
	applied, err := a.db.Migrate(ctx, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "applied %d migration(s)\n", applied)
	return nil
}
