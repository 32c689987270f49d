package reconcile

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/subsync/subsync/internal/jsondecode"
)

// Envelope is what the inbox reads of a Stripe event: its identity and
// data.object left as raw JSON. Reading it builds no map of the object, so
// it costs a fraction of DecodeEvent on the webhook and apply paths.
type Envelope struct {
	ID         string `json:"id"`
	Object     string `json:"object"`
	Type       string `json:"type"`
	APIVersion string `json:"api_version"`
	Created    int64  `json:"created"`
	Livemode   bool   `json:"livemode"`
	Data       struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

// ReadEnvelope reads body as a Stripe event, with DecodeEvent's checks: an
// evt_ id, a type, a created time and a data.object that is a JSON object.
func ReadEnvelope(body []byte) (Envelope, error) {
	var ev Envelope
	if err := jsondecode.Unmarshal(body, &ev); err != nil {
		return ev, fmt.Errorf("%w: %w", ErrNotAnEvent, err)
	}
	obj := ev.Data.Object
	return ev, checkEventHead(ev.ID, ev.Type, ev.Object, ev.Created, len(obj) > 0 && obj[0] == '{')
}

// checkEventHead checks what every event needs, whatever its API version:
// an evt_ id, a type, object "event" (or none), a created time and a
// data.object (hasObject).
func checkEventHead(id, typ, object string, created int64, hasObject bool) error {
	switch {
	case !strings.HasPrefix(id, "evt_") || len(id) > 255:
		return fmt.Errorf("%w: id %q is not an evt_ id", ErrNotAnEvent, clip(id))
	case typ == "" || len(typ) > 255:
		return fmt.Errorf("%w: type missing", ErrNotAnEvent)
	case object != "" && object != "event":
		return fmt.Errorf("%w: object is %q", ErrNotAnEvent, clip(object))
	case created <= 0:
		return fmt.Errorf("%w: created missing", ErrNotAnEvent)
	case !hasObject:
		return fmt.Errorf("%w: data.object missing", ErrNotAnEvent)
	}
	return nil
}

// SubscriptionID is the subscription the event is about, as
// SubscriptionIDOf reads it: the object itself for subscription events,
// the invoice's subscription (in any API version) for invoice events, ""
// when there is none.
func (e Envelope) SubscriptionID() string {
	if IsInvoiceEvent(e.Type) {
		var obj map[string]any
		if jsondecode.Unmarshal(e.Data.Object, &obj) != nil {
			return ""
		}
		return subscriptionOfObject(e.Type, obj)
	}
	var head struct {
		ID     string `json:"id"`
		Object string `json:"object"`
	}
	if jsondecode.Unmarshal(e.Data.Object, &head) != nil || head.Object != "subscription" {
		return ""
	}
	return clip(head.ID)
}
