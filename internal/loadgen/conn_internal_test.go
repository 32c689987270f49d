package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

// A kept connection the server closed while idle is replaced, and the
// request goes through once; a request that times out is not sent again.
func TestConnRetriesOnlyWhatTheServerClosed(t *testing.T) {
	var got atomic.Int32
	slow := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		if r.Header.Get("Stripe-Signature") == "slow" {
			<-slow
		}
	}))
	defer srv.Close()
	defer close(slow)
	u, _ := url.Parse(srv.URL + "/webhooks/stripe")
	c := newConn(u, 300*time.Millisecond)
	defer c.close()
	ctx := context.Background()
	if status, err := c.post(ctx, []byte(`{}`), "t=1,v1=00"); err != nil || status != 200 {
		t.Fatalf("first request: %d %v", status, err)
	}
	srv.CloseClientConnections()
	if status, err := c.post(ctx, []byte(`{}`), "t=1,v1=00"); err != nil || status != 200 {
		t.Fatalf("on a connection the server closed: %d %v, want it sent again on a new one", status, err)
	}
	if n := got.Load(); n != 2 {
		t.Fatalf("server got %d requests, want 2", n)
	}
	if _, err := c.post(ctx, []byte(`{}`), "slow"); err == nil {
		t.Fatal("a request past the timeout succeeded")
	}
	time.Sleep(100 * time.Millisecond)
	if n := got.Load(); n != 3 {
		t.Errorf("server got %d requests, want 3: a timed-out request must not be sent again", n)
	}
}
