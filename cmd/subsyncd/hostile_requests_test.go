package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/internal/testenv"
)

// hostileRequestCases are the requests refused or accepted for what they
// are as HTTP: method, signature, size, headers, content type and body
// encoding.
func hostileRequestCases() []hostileCase {
	inv := map[string]float64{"invalid_signature": 1}
	bad := map[string]float64{"bad_request": 1}
	acc := map[string]float64{"accepted": 1}
	return []hostileCase{
		{
			kind: "GET instead of POST",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				req, _ := http.NewRequest(http.MethodGet, h.hook, nil)
				return hostileDo(req), ""
			},
			code: 405, metrics: map[string]float64{"method_not_allowed": 1}, check: hostileNothing,
		},
		{
			kind: "no Stripe-Signature header",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id, body := h.subEvent(t, "customer.subscription.updated", h.liveSub(t).ID)
				return h.post(t, bytes.NewReader(body), "", "application/json"), id
			},
			code: 400, metrics: inv, check: hostileNothing,
		},
		{
			kind: "signature made with another secret",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id, body := h.subEvent(t, "customer.subscription.updated", h.liveSub(t).ID)
				sig := stripefake.SignPayload(body, "whsec_not_the_configured_one_0123456789", time.Now())
				return h.post(t, bytes.NewReader(body), sig, "application/json"), id
			},
			code: 400, metrics: inv, check: hostileNothing,
		},
		{
			kind: "old timestamp (valid HMAC, signed 1 h ago)",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id, body := h.subEvent(t, "customer.subscription.updated", h.liveSub(t).ID)
				sig := stripefake.SignPayload(body, hostileSecret, time.Now().Add(-time.Hour))
				return h.post(t, bytes.NewReader(body), sig, "application/json"), id
			},
			code: 400, metrics: inv, check: hostileNothing,
		},
		{
			kind: "future timestamp (valid HMAC, signed 1 h ahead)",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id, body := h.subEvent(t, "customer.subscription.updated", h.liveSub(t).ID)
				sig := stripefake.SignPayload(body, hostileSecret, time.Now().Add(time.Hour))
				return h.post(t, bytes.NewReader(body), sig, "application/json"), id
			},
			code: 400, metrics: inv, check: hostileNothing,
		},
		{
			kind: "old signature behind a fresh timestamp (t=now,t=old,v1=old)",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id, body := h.subEvent(t, "customer.subscription.updated", h.liveSub(t).ID)
				sig := fmt.Sprintf("t=%d,", time.Now().Unix()) + stripefake.SignPayload(body, hostileSecret, time.Now().Add(-time.Hour))
				return h.post(t, bytes.NewReader(body), sig, "application/json"), id
			},
			code: 400, metrics: inv, check: hostileNothing,
		},
		{
			kind: "captured body+signature replayed after the tolerance (" + hostileTolerance.String() + ")",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				sub := h.liveSub(t)
				id, body := h.subEvent(t, "customer.subscription.updated", sub.ID)
				at := time.Now()
				sig := stripefake.SignPayload(body, hostileSecret, at)
				if a := h.post(t, bytes.NewReader(body), sig, "application/json"); a.code != 200 {
					t.Fatalf("first delivery: %v", a)
				}
				h.settled(t, id)
				// Signature times are whole seconds: wait until the captured one
				// is surely older than the tolerance.
				testenv.WaitWithin(t, 3*hostileTolerance, "the captured signature to expire", func() bool {
					return time.Since(at.Truncate(time.Second)) > hostileTolerance+time.Second
				})
				return h.post(t, bytes.NewReader(body), sig, "application/json"), id
			},
			code: 400, metrics: map[string]float64{"accepted": 1, "invalid_signature": 1}, events: 1, subs: 1,
			check: hostileEventIs("applied", "only the first delivery (applied); the replay nothing"),
		},
		{
			kind: "body over 1 MiB (1 MiB + 1 byte, Content-Length)",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id, body := h.subEvent(t, "customer.subscription.updated", h.liveSub(t).ID)
				body = hostilePad(t, body, 1<<20+1)
				return h.signed(t, body), id
			},
			code: 413, metrics: map[string]float64{"too_large": 1}, check: hostileNothing,
		},
		{
			kind: "body over 1 MiB, chunked (no Content-Length), 8 MiB",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id, body := h.subEvent(t, "customer.subscription.updated", h.liveSub(t).ID)
				body = hostilePad(t, body, 8<<20)
				// An io.Reader of unknown length makes the client send chunks.
				r := io.MultiReader(bytes.NewReader(body))
				return h.post(t, r, stripefake.SignPayload(body, hostileSecret, time.Now()), "application/json"), id
			},
			code: 413, metrics: map[string]float64{"too_large": 1}, check: hostileNothing,
		},
		{
			kind: "body of exactly 1 MiB (valid event padded with blanks)",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id, body := h.subEvent(t, "customer.subscription.updated", h.liveSub(t).ID)
				return h.signed(t, hostilePad(t, body, 1<<20)), id
			},
			code: 200, status: "accepted", metrics: acc, events: 1, subs: 1,
			check: hostileApplied("event applied, row = Stripe"),
		},
		{
			kind: "headers over 64 KiB (80 KiB header)",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id, body := h.subEvent(t, "customer.subscription.updated", h.liveSub(t).ID)
				return hostileRaw(t, h.d.listen, "POST /webhooks/stripe HTTP/1.1\r\nHost: subsync\r\nContent-Type: application/json\r\n"+
					"Stripe-Signature: "+stripefake.SignPayload(body, hostileSecret, time.Now())+"\r\n"+
					"X-Padding: "+strings.Repeat("a", 80<<10)+"\r\n"+
					"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+string(body)), id
			},
			code: 431, metrics: map[string]float64{}, check: hostileNothing,
		},
		{
			kind: "wrong Content-Type (text/plain), signature valid",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				sub := h.liveSub(t)
				id, body := h.subEvent(t, "customer.subscription.updated", sub.ID)
				return h.post(t, bytes.NewReader(body), stripefake.SignPayload(body, hostileSecret, time.Now()), "text/plain"), id
			},
			code: 200, status: "accepted", metrics: acc, events: 1, subs: 1,
			check: hostileApplied("event applied, row = Stripe (the signature, not the header, proves the sender)"),
		},
		{
			kind: "invalid UTF-8 in a string, signature valid",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id := hostileID("evt_hostile_")
				body := []byte(`{"id":"` + id + `","object":"event","type":"customer.subscription.updated","created":` +
					strconv.FormatInt(time.Now().Unix(), 10) + `,"data":{"object":{"id":"sub_x","object":"subscription","description":"` + "\xff\xfe\xc3" + `"}}}`)
				return h.signed(t, body), id
			},
			code: 400, metrics: bad, check: hostileNothing,
		},
		{
			kind: `NUL character (\u0000) in a string, signature valid`,
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id := hostileID("evt_hostile_")
				body := []byte(`{"id":"` + id + `","object":"event","type":"charge.succeeded","created":` +
					strconv.FormatInt(time.Now().Unix(), 10) + `,"data":{"object":{"id":"ch_x","description":"a\u0000b"}}}`)
				return h.signed(t, body), id
			},
			code: 400, metrics: bad, check: hostileNothing,
		},
		{
			kind: "100,000 nested [ , signature valid",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				return h.signed(t, bytes.Repeat([]byte("["), 100_000)), ""
			},
			code: 400, metrics: bad,
			check: func(t *testing.T, h *hostileEnv, _ string) string {
				if code, _ := get(t, "http://"+h.d.listen+"/healthz"); code != 200 {
					t.Fatalf("/healthz = %d after the nested body", code)
				}
				return "nothing; the daemon still answers /healthz"
			},
		},
		{
			kind: "100,000 nested { inside a valid event, signature valid",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id := hostileID("evt_hostile_")
				body := `{"id":"` + id + `","object":"event","type":"charge.succeeded","created":1,"data":{"object":{"a":` +
					strings.Repeat(`{"a":`, 100_000) + "1" + strings.Repeat("}", 100_000) + "}}}"
				return h.signed(t, []byte(body)), id
			},
			code: 400, metrics: bad, check: hostileNothing,
		},
		{
			kind: "id that is not evt_ (ch_…), signature valid",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				sub := h.liveSub(t)
				return h.signed(t, hostileEvent(t, hostileID("ch_"), "customer.subscription.updated", sub)), ""
			},
			code: 400, metrics: bad, check: hostileNothing,
		},
		{
			kind: "empty body, signature valid",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) { return h.signed(t, []byte{}), "" },
			code: 400, metrics: bad, check: hostileNothing,
		},
		{
			kind: "JSON null, signature valid",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) { return h.signed(t, []byte("null")), "" },
			code: 400, metrics: bad, check: hostileNothing,
		},
	}
}

// hostilePad pads a JSON object with blanks before its closing brace to
// exactly n bytes.
func hostilePad(t *testing.T, body []byte, n int) []byte {
	t.Helper()
	if len(body) > n || body[len(body)-1] != '}' {
		t.Fatalf("cannot pad %d bytes to %d", len(body), n)
	}
	out := make([]byte, 0, n)
	out = append(out, body[:len(body)-1]...)
	out = append(out, bytes.Repeat([]byte(" "), n-len(body))...)
	return append(out, '}')
}

// hostileRaw writes a raw request on a fresh connection and reads the
// answer.
func hostileRaw(t *testing.T, addr, raw string) hostileAnswer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return hostileAnswer{err: err}
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return hostileAnswer{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return hostileAnswer{code: resp.StatusCode, body: string(b)}
}
