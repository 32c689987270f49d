package stripeapi

import (
	"errors"
	"fmt"
	"strings"

	"github.com/stripe/stripe-go/v76"
)

var (
	// ErrNotFound is wrapped by errors for a 404 resource_missing answer:
	// the object does not exist (or not in this mode/account).
	ErrNotFound = errors.New("stripe: resource not found")
	// ErrInvalidKey is wrapped by errors for a 401 answer: the API key is
	// wrong, expired or revoked.
	ErrInvalidKey = errors.New("stripe: invalid API key")
)

// redacted replaces the API key wherever it would otherwise appear.
const redacted = "[redacted]"

// APIError is an error answer from Stripe. It unwraps to the stripe-go
// *stripe.Error and, when it applies, to ErrNotFound or ErrInvalidKey.
type APIError struct {
	// Stripe is the error as stripe-go decoded it.
	Stripe *stripe.Error
	kind   error
}

// Error describes the answer on one line: status, type, code, message and
// request id.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "stripe: status %d", e.Stripe.HTTPStatusCode)
	if e.Stripe.Type != "" {
		fmt.Fprintf(&b, " %s", e.Stripe.Type)
	}
	if e.Stripe.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Stripe.Code)
	}
	if e.Stripe.Msg != "" {
		fmt.Fprintf(&b, ": %s", e.Stripe.Msg)
	}
	if e.Stripe.RequestID != "" {
		fmt.Fprintf(&b, " [request %s]", e.Stripe.RequestID)
	}
	return b.String()
}

// Unwrap returns the sentinel (if any) and the stripe-go error.
func (e *APIError) Unwrap() []error {
	if e.kind != nil {
		return []error{e.kind, e.Stripe}
	}
	return []error{e.Stripe}
}

// StatusCode returns the HTTP status of the answer.
func (e *APIError) StatusCode() int { return e.Stripe.HTTPStatusCode }

// fail wraps err from a stripe-go call with what was being done, maps it to
// the package's sentinels and scrubs the key from its text.
func (c *Client) fail(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	var se *stripe.Error
	if errors.As(err, &se) {
		if c.key != "" {
			se.Msg = strings.ReplaceAll(se.Msg, c.key, redacted)
		}
		ae := &APIError{Stripe: se}
		switch {
		case se.HTTPStatusCode == 404 && se.Code == stripe.ErrorCodeResourceMissing:
			ae.kind = ErrNotFound
		case se.HTTPStatusCode == 401:
			ae.kind = ErrInvalidKey
		}
		return fmt.Errorf("%s: %w", what, ae)
	}
	if c.key != "" && strings.Contains(err.Error(), c.key) {
		err = &scrubbed{msg: strings.ReplaceAll(err.Error(), c.key, redacted), err: err}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// scrubbed hides the key in the text of an error that somehow carries it,
// while keeping the chain for errors.Is.
type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }
