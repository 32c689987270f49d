package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/internal/testenv"
)

// TestSlowClientsAreCut shows that the listeners' timeouts (newHTTPServer)
// hold against clients that are slow on purpose, while other clients are
// served: headers sent one byte a second are cut by ReadHeaderTimeout, a
// body sent one byte a second by ReadTimeout, and a client that pipelines
// requests but never reads the answers by WriteTimeout. The cases run in
// parallel; each must be cut after its timeout and within three times it.
func TestSlowClientsAreCut(t *testing.T) {
	t.Parallel()
	h := newHostileEnv(t, "refetch")
	limits := newHTTPServer(nil, slogDiscard())

	t.Run("headers one byte a second", func(t *testing.T) {
		t.Parallel()
		c := slowDial(t, h.d.listen)
		raw := "POST /webhooks/stripe HTTP/1.1\r\nHost: subsync\r\nContent-Type: application/json\r\n" +
			"Stripe-Signature: t=1,v1=00\r\nContent-Length: 2\r\n\r\n{}"
		cut, sent, got := slowTrickle(t, c, []byte(raw), time.Second, 3*limits.ReadHeaderTimeout)
		slowWithin(t, "ReadHeaderTimeout", cut, limits.ReadHeaderTimeout)
		t.Logf("slow headers: cut after %s (ReadHeaderTimeout %s), %d of %d bytes sent, server said %q",
			cut.Round(10*time.Millisecond), limits.ReadHeaderTimeout, sent, len(raw), got)
	})

	t.Run("body one byte a second", func(t *testing.T) {
		t.Parallel()
		id, body := h.subEvent(t, "customer.subscription.updated",
			h.subscribe(t, h.mapped.ID, map[string]string{"user_id": "user-slow"}, nil).ID)
		head := "POST /webhooks/stripe HTTP/1.1\r\nHost: subsync\r\nContent-Type: application/json\r\n" +
			"Stripe-Signature: " + stripefake.SignPayload(body, hostileSecret, time.Now()) + "\r\n" +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
		c := slowDial(t, h.d.listen)
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		cut, sent, got := slowTrickle(t, c, body, time.Second, 3*limits.ReadTimeout)
		slowWithin(t, "ReadTimeout", cut, limits.ReadTimeout)
		if _, ok := h.event(t, id); ok {
			t.Fatalf("event %s stored from a body that never arrived", id)
		}
		t.Logf("slow body: cut after %s (ReadTimeout %s), %d of %d body bytes sent, server said %q, nothing stored",
			cut.Round(10*time.Millisecond), limits.ReadTimeout, sent, len(body), got)
	})

	t.Run("client never reads the response", func(t *testing.T) {
		t.Parallel()
		// GET /metrics answers tens of KiB: pipelining many of them fills
		// the socket buffers, so the server's write blocks until
		// WriteTimeout gives up on the connection.
		c := slowDial(t, h.d.metrics)
		c.(*net.TCPConn).SetReadBuffer(4 << 10)
		const n = 2000
		start := time.Now()
		go io.WriteString(c, strings.Repeat("GET /metrics HTTP/1.1\r\nHost: subsync\r\n\r\n", n))
		client, server := slowPorts(c)
		// Meanwhile every other client is served.
		served, slowest := 0, time.Duration(0)
		var cut time.Duration
		testenv.WaitWithin(t, 3*limits.WriteTimeout, "the server to drop the connection that never reads", func() bool {
			for _, u := range []string{"http://" + h.d.listen + "/healthz", "http://" + h.d.metrics + "/metrics"} {
				t0 := time.Now()
				if code, _ := get(t, u); code != 200 {
					t.Fatalf("%s = %d while a client does not read", u, code)
				}
				served++
				slowest = max(slowest, time.Since(t0))
			}
			established, known := slowEstablished(server, client)
			if !known {
				// No /proc/net/tcp: the read below shows the cut.
				return time.Since(start) > limits.WriteTimeout+5*time.Second
			}
			if !established {
				cut = time.Since(start)
				return true
			}
			time.Sleep(200 * time.Millisecond)
			return false
		})
		// Now read everything the server wrote before it gave up: the
		// connection must end before all the answers were sent.
		c.SetReadDeadline(time.Now().Add(limits.WriteTimeout))
		all, err := io.ReadAll(c)
		answers := bytes.Count(all, []byte("HTTP/1.1 200 OK"))
		if answers >= n {
			t.Fatalf("all %d answers arrived: the server never gave up (err %v)", answers, err)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the connection is still open after %s (%d answers read)", time.Since(start), answers)
		}
		if cut > 0 {
			slowWithin(t, "WriteTimeout", cut, limits.WriteTimeout)
		}
		t.Logf("never reads: connection dropped after %s (WriteTimeout %s) with %d of %d answers (%d KiB) delivered; "+
			"meanwhile %d requests of other clients served, slowest %s",
			cut.Round(10*time.Millisecond), limits.WriteTimeout, answers, n, len(all)>>10, served, slowest.Round(time.Millisecond))
	})
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func slowDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// slowTrickle writes data one byte per every until the server closes the
// connection (or answers and closes) or limit passes. It returns when the
// server cut it (measured from the start), how many bytes were sent and
// what the server said.
func slowTrickle(t *testing.T, c net.Conn, data []byte, every, limit time.Duration) (time.Duration, int, string) {
	t.Helper()
	start := time.Now()
	type result struct {
		at  time.Duration
		got string
	}
	done := make(chan result, 1)
	go func() {
		c.SetReadDeadline(time.Now().Add(limit))
		b, _ := io.ReadAll(c) // until the server closes
		line, _, _ := strings.Cut(string(b), "\r\n")
		done <- result{time.Since(start), line}
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	sent := 0
	for {
		select {
		case r := <-done:
			if r.at >= limit {
				t.Fatalf("not cut within %s (%d bytes sent)", limit, sent)
			}
			return r.at, sent, r.got
		case <-tick.C:
			if sent < len(data) {
				if _, err := c.Write(data[sent : sent+1]); err == nil {
					sent++
				}
			}
		}
	}
}

// slowWithin fails unless the cut came after the timeout (less a second
// of slack: the server's clock starts when it accepts) and within three
// times it.
func slowWithin(t *testing.T, name string, cut, timeout time.Duration) {
	t.Helper()
	if cut < timeout-time.Second || cut > 3*timeout {
		t.Fatalf("cut after %s; %s is %s: want between %s and %s", cut, name, timeout, timeout-time.Second, 3*timeout)
	}
}

// slowPorts returns the client's and the server's port of c.
func slowPorts(c net.Conn) (client, server int) {
	return c.LocalAddr().(*net.TCPAddr).Port, c.RemoteAddr().(*net.TCPAddr).Port
}

// slowEstablished reports whether the server's end of the connection
// (local port server, remote port client) is still ESTABLISHED, from
// Linux's /proc/net/tcp; known is false where that file does not exist.
func slowEstablished(server, client int) (established, known bool) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false, false
	}
	local := fmt.Sprintf(":%04X ", server)
	remote := fmt.Sprintf(":%04X ", client)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		if strings.HasSuffix(f[1]+" ", local) && strings.HasSuffix(f[2]+" ", remote) {
			return f[3] == "01", true
		}
	}
	return false, true
}
