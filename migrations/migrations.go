// Package migrations holds the SQL migrations of subsyncd, embedded so the
// binary carries its own schema. They are applied by the db package with goose.
//
// A migration that creates a table also closes it to Supabase's Data API
// roles (anon, authenticated), as 00011_close_data_api.sql does, and the
// table joins db.Tables; TestSupabaseTablesClosedToDataAPI fails on any
// table those roles can reach, and on any function in public they may
// execute (00014_lock_subscriptions.sql revokes its function from them). A
// migration that changes a column of user_subscriptions recreates
// subsync_lock_subscriptions, which returns those columns; a function
// dropped and created again loses its privileges, so it repeats 00014's
// revokes.
package migrations

import "embed"

// FS holds every *.sql migration, named NNNNN_description.sql.
//
//go:embed *.sql
var FS embed.FS
