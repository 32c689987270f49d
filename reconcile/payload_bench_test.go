package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/subsync/subsync/internal/loadgen"
	"github.com/subsync/subsync/reconcile"
)

// BenchmarkPayloadRow is the Go work of applying one webhook in payload
// mode from its body: read the envelope, decode the subscription, compute
// the desired row.
func BenchmarkPayloadRow(b *testing.B) {
	body := loadgen.Event("bench", 1, "sub_bench_1", "price_load", time.Now())
	r := &reconcile.Resolver{}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		env, err := reconcile.ReadEnvelope(body)
		if err != nil {
			b.Fatal(err)
		}
		sub, err := r.SubscriptionFromObject(env.Data.Object)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Desired(context.Background(), sub, time.Unix(env.Created, 0), true); err != nil {
			b.Fatal(err)
		}
	}
}
