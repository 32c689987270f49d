// Package migrations holds the SQL migrations of subsyncd, embedded so the
// binary carries its own schema. They are applied by the db package with goose.
package migrations

import "embed"

// FS holds every *.sql migration, named NNNNN_description.sql.
//
//go:embed *.sql
var FS embed.FS
