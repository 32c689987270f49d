package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/subsync/subsync/db"
)

// checkDataAPI fails for every subsync table that Supabase's anon or
// authenticated role reaches without a policy deciding which rows: the
// Data API serves such a table to anyone holding the project's public key
// (anon) or to any signed-in user. It prints nothing on a database without
// those roles.
func checkDataAPI(ctx context.Context, c *checker, d *db.DB) {
	found, exp, err := d.DataAPIExposure(ctx)
	switch {
	case err != nil:
		c.fail("supabase", "could not read the privileges of anon and authenticated: %v", err)
		return
	case !found:
		return
	}
	var open int
	var viaPolicy []string
	for _, e := range exp {
		switch {
		case e.Open():
			open++
			why := "row-level security off"
			if e.RLS {
				why = "TRUNCATE ignores row-level security"
			}
			c.fail("supabase", "%s: %s can %s (%s); run subsyncd migrate, or REVOKE ALL ON %s FROM %s",
				e.Table, e.Role, strings.Join(e.Privileges, ", "), why, e.Table, e.Role)
		case len(e.Policies) > 0:
			viaPolicy = append(viaPolicy, fmt.Sprintf("%s %s through %s", e.Role, e.Table, strings.Join(e.Policies, ", ")))
		}
	}
	if open > 0 {
		return
	}
	detail := "anon and authenticated reach no subsync table"
	if len(viaPolicy) > 0 {
		detail += " except by policy: " + strings.Join(viaPolicy, "; ")
	}
	c.ok("supabase", "%s", detail)
}
