package db

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/subsync/subsync/reconcile"
)

// arrayLiteral builds the text of a one-dimensional Postgres array, which
// a statement casts to the element type it needs: every text element
// quoted (so that no value reads as NULL or splits), backslash and double
// quote escaped, invalid UTF-8 replaced; NULL and booleans bare.
type arrayLiteral struct{ b []byte }

// newArrayLiteral starts an array of n elements, with room for elements
// of about 30 bytes (a Stripe id, a timestamp).
func newArrayLiteral(n int) *arrayLiteral {
	a := &arrayLiteral{b: make([]byte, 0, 2+n*33)}
	a.b = append(a.b, '{')
	return a
}

func (a *arrayLiteral) sep() {
	if len(a.b) > 1 {
		a.b = append(a.b, ',')
	}
}

func (a *arrayLiteral) str(s string) {
	a.sep()
	a.b = append(a.b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c == '"' || c == '\\' {
				a.b = append(a.b, '\\')
			}
			a.b = append(a.b, c)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			a.b = utf8.AppendRune(a.b, utf8.RuneError) // each invalid byte, as encoding/json writes it
		} else {
			a.b = append(a.b, s[i:i+n]...)
		}
		i += n
	}
	a.b = append(a.b, '"')
}

func (a *arrayLiteral) null() {
	a.sep()
	a.b = append(a.b, "NULL"...)
}

func (a *arrayLiteral) optStr(s *string) {
	if s == nil {
		a.null()
		return
	}
	a.str(*s)
}

// tm writes t with its nanoseconds, as encoding/json does; Postgres
// rounds them to microseconds.
func (a *arrayLiteral) tm(t time.Time) {
	a.sep()
	a.b = append(a.b, '"')
	a.b = t.AppendFormat(a.b, time.RFC3339Nano)
	a.b = append(a.b, '"')
}

func (a *arrayLiteral) optTime(t *time.Time) {
	if t == nil {
		a.null()
		return
	}
	a.tm(*t)
}

func (a *arrayLiteral) boolean(v bool) {
	a.sep()
	a.b = strconv.AppendBool(a.b, v)
}

func (a *arrayLiteral) String() string { return string(append(a.b, '}')) }

// rowColumns renders rows as one array per written column of
// user_subscriptions, in the order of the insert's columns: the first
// holds the subscription ids.
func rowColumns(rows []reconcile.Subscription) []any {
	n := len(rows)
	cols := make([]*arrayLiteral, 12)
	for i := range cols {
		cols[i] = newArrayLiteral(n)
	}
	for _, r := range rows {
		cols[0].str(r.StripeSubscriptionID)
		cols[1].optStr(r.UserID)
		cols[2].str(r.StripeCustomerID)
		cols[3].optStr(r.StripePriceID)
		cols[4].optStr(r.PlanID)
		cols[5].str(r.BillingPeriod)
		cols[6].str(r.Status)
		cols[7].optTime(r.CurrentPeriodStart)
		cols[8].optTime(r.CurrentPeriodEnd)
		cols[9].boolean(r.CancelAtPeriodEnd)
		cols[10].optTime(r.CanceledAt)
		cols[11].tm(r.StripeStateAt)
	}
	out := make([]any, len(cols))
	for i, c := range cols {
		out[i] = c.String()
	}
	return out
}
