package reconcile_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/subsync/subsync/internal/jsondecode"
	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/reconcile"
)

// FuzzReadEnvelopeAsEncodingJSON: ReadEnvelope and SubscriptionID, whose
// decoding goes through the fast decoder, give exactly what they give with
// encoding/json alone. Seeds: every event of the corpora, and edge cases.
func FuzzReadEnvelopeAsEncodingJSON(f *testing.F) {
	for _, body := range testenv.CorpusEvents(f, false, corpusDir, moreCorpusDir) {
		f.Add(body)
	}
	for _, s := range []string{
		`{"id":"evt_1","object":"event","type":"customer.subscription.updated","created":1,"data":{"object":{"id":"sub_1","object":"subscription"}}}`,
		`{"ID":"evt_2","id":"evt_1","Type":"x","type":"invoice.paid","created":1,"data":{"object":{"subscription":"sub_1","object":"invoice"}}}`,
		`{"id":"evt_1","type":"customer.subscription.updated","created":1.5,"data":{"object":{}}}`,
		`{"id":"evt_1","type":"customer.subscription.updated","created":1,"data":{"object":{"id":"sub_1","object":"subscription"},"object":"x"}}`,
		`{"id":"evt_1","type":"customer.subscription.updated","created":1,"livemode":"yes","data":{"object":{"id":"sub_1"}}}`,
		`{"id":"evt_\u0031","type":"customer.subscription.updated","created":1,"data":{"object":{"id":"sub_\ud800","object":"subscription"}}}`,
		`{"id":"evt_1","type":"invoice.paid","created":1,"data":{"object":{"parent":{"subscription_details":{"subscription":"sub_9"}}}}}`,
		`{"id":"evt_1","type":"customer.subscription.updated","created":1,"data":{"object":[]}}`, `{"id":"evt_1"} {}`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gotErr := reconcile.ReadEnvelope(body)
		gotSub := got.SubscriptionID()
		var want reconcile.Envelope
		var wantErr error
		var wantSub string
		jsondecode.Reference(func() {
			want, wantErr = reconcile.ReadEnvelope(body)
			wantSub = want.SubscriptionID()
		})
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Fatalf("error %v; with encoding/json alone %v", gotErr, wantErr)
		}
		if !reflect.DeepEqual(got, want) || gotSub != wantSub {
			t.Fatalf("read %+v (subscription %q); with encoding/json alone %+v (%q)", got, gotSub, want, wantSub)
		}
	})
}
