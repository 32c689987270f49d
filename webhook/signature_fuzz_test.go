package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	stripewebhook "github.com/stripe/stripe-go/v76/webhook"
	"github.com/subsync/subsync/reconcile"
)

// The fixed inputs of FuzzSignatureHeader. They are constants because the
// committed corpus (testdata/fuzz/FuzzSignatureHeader) holds signatures of
// this body with these secrets at times around sigFuzzNow.
const (
	sigFuzzSecretA = "whsec_sigfuzz_A_1b7e3c9d5f2a8e4c6b0d1f3a5c7e9b2d"
	sigFuzzSecretB = "whsec_sigfuzz_B_8c2e4a6b0d1f3e5a7c9b1d3f5a7e9c2b"
	sigFuzzOther   = "whsec_sigfuzz_X_0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	sigFuzzBody    = `{"id":"evt_sigfuzz_1","object":"event","api_version":"2023-10-16","created":1711022400,` +
		`"type":"customer.subscription.updated","livemode":false,"data":{"object":{"id":"sub_sigfuzz_1","object":"subscription","status":"active"}}}`
	sigFuzzTolerance = 5 * time.Minute
)

// sigFuzzNow is the handler's clock during the fuzzing.
var sigFuzzNow = time.Date(2024, time.March, 21, 12, 0, 0, 0, time.UTC)

// sigFuzzStore is an in-memory Store. It exists for this target only: the
// target is the header parser, and an in-memory store lets it run at
// parser speed; the handler's own fuzz target (fuzz_test.go) stores into a
// real database.
type sigFuzzStore struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (s *sigFuzzStore) InsertEvent(_ context.Context, ev reconcile.NewEvent) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids[ev.ID] {
		return false, nil
	}
	s.ids[ev.ID] = true
	return true, nil
}

// sigFuzzHeader signs the fixed body at t with each secret, the way Stripe
// does: t=<unix>,v1=<sig>[,v1=<sig>…].
func sigFuzzHeader(t time.Time, secrets ...string) string {
	h := "t=" + strconv.FormatInt(t.Unix(), 10)
	for _, s := range secrets {
		h += ",v1=" + hex.EncodeToString(stripewebhook.ComputeSignature(t, []byte(sigFuzzBody), s))
	}
	return h
}

// sigFuzzVerdict is the oracle: an independent reading of the header.
// valid: some v1 element is the signature, under a configured secret, of
// the body with a t element's timestamp, and that timestamp is within the
// tolerance of now. canonical: the header has Stripe's exact shape (one t,
// then only v0/v1 elements, no blanks, at most 8 KiB), so a valid one must
// be accepted.
func sigFuzzVerdict(header string) (valid, canonical bool) {
	var times []int64
	var sigs [][]byte
	canonical = true
	for i, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(part, "=")
		switch {
		case !ok:
			canonical = false
		case k == "t":
			sec, err := strconv.ParseInt(v, 10, 64)
			if err != nil || i != 0 {
				canonical = false
			}
			if err == nil {
				times = append(times, sec)
			}
		case k == "v1":
			if sig, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, sig)
			} else {
				canonical = false
			}
		case k == "v0":
		default:
			canonical = false
		}
		if strings.TrimSpace(part) != part || strings.Count(part, "=") != 1 {
			canonical = false
		}
	}
	// The handler refuses headers over 8 KiB; Stripe's are about 150 bytes.
	canonical = canonical && len(times) == 1 && len(header) <= 8192
	for _, sec := range times {
		if sec < sigFuzzNow.Add(-sigFuzzTolerance).Unix() || sec > sigFuzzNow.Add(sigFuzzTolerance).Unix() {
			continue
		}
		for _, secret := range []string{sigFuzzSecretA, sigFuzzSecretB} {
			want := stripewebhook.ComputeSignature(time.Unix(sec, 0), []byte(sigFuzzBody), secret)
			for _, sig := range sigs {
				if hmac.Equal(sig, want) {
					valid = true
				}
			}
		}
	}
	return valid, canonical
}

// FuzzSignatureHeader sends the fixed, well-formed event with a fuzzed
// Stripe-Signature header through webhook.New(…).ServeHTTP. Properties: no
// panic; the answer is 200 or 400; 200 only when the header carries a v1
// that signs the body, with a configured secret, at a timestamp within the
// tolerance; a canonical header with such a v1 is accepted.
func FuzzSignatureHeader(f *testing.F) {
	now := sigFuzzNow
	for _, h := range []string{
		sigFuzzHeader(now, sigFuzzSecretA),
		sigFuzzHeader(now, sigFuzzSecretB),
		sigFuzzHeader(now, sigFuzzOther, sigFuzzSecretA),
		sigFuzzHeader(now.Add(-sigFuzzTolerance), sigFuzzSecretA),
		sigFuzzHeader(now.Add(-sigFuzzTolerance-time.Second), sigFuzzSecretA),
		sigFuzzHeader(now.Add(sigFuzzTolerance+time.Second), sigFuzzSecretA),
		sigFuzzHeader(now, sigFuzzOther),
		// an old captured signature behind a fresh timestamp, either side
		"t=" + strconv.FormatInt(now.Unix(), 10) + "," + sigFuzzHeader(now.Add(-time.Hour), sigFuzzSecretA),
		sigFuzzHeader(now.Add(-time.Hour), sigFuzzSecretA) + ",t=" + strconv.FormatInt(now.Unix(), 10),
		" t=" + strconv.FormatInt(now.Unix(), 10) + "," + sigFuzzHeader(now.Add(-time.Hour), sigFuzzSecretA),
		strings.ToUpper(sigFuzzHeader(now, sigFuzzSecretA)),
		strings.ReplaceAll(sigFuzzHeader(now, sigFuzzSecretA), ",", ", "),
		sigFuzzHeader(now, sigFuzzSecretA) + ",v0=deadbeef,scheme=x",
		"",
		"t=",
		"t=,v1=",
		"v1=00",
		"t=-1,v1=00",
		"t=9223372036854775807,v1=00",
		"t=1711022400",
		"t=1711022400,v1=zz",
		",,,=,==",
		strings.Repeat("t=1711022400,", 700),
	} {
		f.Add(h)
	}
	h, err := New(Config{
		Secrets:   []string{sigFuzzSecretA, sigFuzzSecretB},
		Tolerance: sigFuzzTolerance,
		Clock:     func() time.Time { return sigFuzzNow },
	}, &sigFuzzStore{ids: map[string]bool{}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header string) {
		req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader([]byte(sigFuzzBody)))
		req.Header["Stripe-Signature"] = []string{header}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		valid, canonical := sigFuzzVerdict(header)
		switch rec.Code {
		case http.StatusOK:
			if !valid {
				t.Fatalf("header %q accepted (%s) without a valid v1 within the tolerance", header, rec.Body)
			}
		case http.StatusBadRequest:
			if valid && canonical {
				t.Fatalf("canonical valid header %q refused: %s", header, rec.Body)
			}
		default:
			t.Fatalf("header %q: status %d %s", header, rec.Code, rec.Body)
		}
	})
}
