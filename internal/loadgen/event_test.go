package loadgen_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/subsync/subsync/internal/loadgen"
)

// TestEventIsAStripeEvent checks that an event decodes, names the
// subscription it is about and is about as large as a real one.
func TestEventIsAStripeEvent(t *testing.T) {
	body := loadgen.Event("r1", 3, "sub_x7", "price_y", time.Unix(1700000000, 0))
	var ev struct {
		ID      string `json:"id"`
		Type    string `json:"type"`
		Created int64  `json:"created"`
		Data    struct {
			Object struct {
				ID       string `json:"id"`
				Customer string `json:"customer"`
				Items    struct {
					Data []struct {
						Price struct {
							ID string `json:"id"`
						} `json:"price"`
					} `json:"data"`
				} `json:"items"`
			} `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatalf("decode: %v\n%s", err, body)
	}
	if ev.ID != "evt_loadr1_3" || ev.Type != "customer.subscription.updated" || ev.Created != 1700000000 {
		t.Errorf("event = %+v", ev)
	}
	if o := ev.Data.Object; o.ID != "sub_x7" || o.Customer != "cus_x7" || len(o.Items.Data) != 1 || o.Items.Data[0].Price.ID != "price_y" {
		t.Errorf("subscription = %+v", o)
	}
	t.Logf("%d bytes", len(body))
	if n := len(body); n < 1300 || n > 1800 {
		t.Errorf("event is %d bytes, want about 1.5 KB", n)
	}
}
