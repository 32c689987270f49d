package stripeapi_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/internal/jsondecode"
	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/stripeapi"
)

// FuzzDecodeSubscriptionAsEncodingJSON: DecodeSubscription, whose decoding
// goes through the fast decoder, gives exactly what it gives with
// encoding/json alone: the same subscription, or the same error message.
// Seeds: every data.object of the event corpora, and edge cases of JSON
// the two decoders could read differently.
func FuzzDecodeSubscriptionAsEncodingJSON(f *testing.F) {
	for _, obj := range testenv.CorpusEvents(f, true, "../testdata/stripe-events", "../testdata/stripe-events-more") {
		f.Add(obj)
	}
	for _, s := range []string{
		`{"id":"sub_1","object":"subscription","status":"active","customer":"cus_1","items":{"data":[{"price":"price_2"}]}}`,
		`{"ID":"sub_2","id":"sub_1","Status":"past_due","status":"active","customer":{"id":"cus_1","metadata":{"user_id":"u"}}}`,
		`{"id":"sub_1","status":"active","customer":"cus_1","customer":{"id":"cus_2"},"metadata":{"user_id":"a","user_id":"b"}}`,
		`{"id":"sub_1","status":"active","customer":"cus_1","current_period_end":1e3,"created":-0,"canceled_at":null}`,
		`{"id":"sub_1","status":"active","customer":"cus_1","current_period_end":99999999999999999999}`,
		`{"id":"sub_1","status":"active","customer":"cus_1","cancel_at_period_end":"true"}`,
		`{"id":"sub_1","status":"active","customer":"cus_1","items":{"data":[{"price":{"id":"price_1","recurring":{"interval":"month","interval_count":1.5}}}]}}`,
		`{"id":"sub_1","status":"active","customer":"cus_1","items":{"data":[{"price":{"id":7}},{"price":"price_2"}]}}`,
		`{"id":"sub_\u00e9\ud83d\ude00\u0041","status":"\u0061ctive","customer":"cus_\"1\\"}`,
		"{\"id\":\"sub_\xff\",\"status\":\"active\",\"customer\":\"cus_1\"}",
		`{"id":"sub_1","status":"active","customer":"cus_1","plan":{"id":"gold","interval":"year"},"items":null}`,
		`{"id":"sub_1","status":"active","customer":"cus_1"} `, `{"id":"sub_1"}x`, `{"id":"sub_1",}`, `{`, ``, `null`, `[]`, `"sub_1"`,
		`{"id":"sub_1","status":"active","customer":{"id":"cus_1","metadata":{"user_id":null},"deleted":1}}`,
		`{"metadata":{"a":"b","c":1},"id":"sub_1","status":"active","customer":"cus_1"}`,
		`{"id":"sub_1","object":"subscription","status":"active","customer":"cus_1","ſtatus":"canceled","\u212aey":1}`,
	} {
		f.Add([]byte(s))
	}
	planned := func(id string) bool { return id == "price_2" }
	f.Fuzz(func(t *testing.T, obj []byte) {
		got, gotErr := stripeapi.DecodeSubscription(obj, planned)
		var want *stripe.Subscription
		var wantErr error
		jsondecode.Reference(func() { want, wantErr = stripeapi.DecodeSubscription(obj, planned) })
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Fatalf("error %v; with encoding/json alone %v", gotErr, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("read %+v; with encoding/json alone %+v", got, want)
		}
	})
}
