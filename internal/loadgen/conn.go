package loadgen

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// conn is one sender's keep-alive HTTP/1.1 connection to the endpoint. It
// writes each request in one piece and reads the answer with net/http's
// parser, without the client's connection pool, per-request goroutines
// and header maps: the load generator shares the machine with the daemon
// it measures, so what it spends per request is taken from the daemon.
type conn struct {
	target  *url.URL
	timeout time.Duration
	nc      net.Conn
	r       *bufio.Reader
	buf     []byte
}

func newConn(target *url.URL, timeout time.Duration) *conn {
	return &conn{target: target, timeout: timeout}
}

// post sends body signed with sig and returns the answer's status, its
// body read and dropped. A request that finds a connection kept from an
// earlier one closed by the server (it closed it while idle) before any
// answer arrives is sent once more on a new connection, as net/http's
// client does; a request that timed out is not.
func (c *conn) post(ctx context.Context, body []byte, sig string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	reused := c.nc != nil
	status, answered, err := c.try(ctx, body, sig)
	if err != nil && reused && !answered && closedByPeer(err) {
		status, _, err = c.try(ctx, body, sig)
	}
	return status, err
}

// closedByPeer reports whether err says the other end closed the
// connection.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (c *conn) try(ctx context.Context, body []byte, sig string) (status int, answered bool, err error) {
	if c.nc == nil {
		if err := c.dial(ctx); err != nil {
			return 0, false, err
		}
	}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if err := c.nc.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, false, err
	}
	c.buf = append(c.buf[:0], "POST "...)
	c.buf = append(c.buf, c.target.RequestURI()...)
	c.buf = append(c.buf, " HTTP/1.1\r\nHost: "...)
	c.buf = append(c.buf, c.target.Host...)
	c.buf = append(c.buf, "\r\nUser-Agent: subsync-load\r\nContent-Type: application/json\r\nStripe-Signature: "...)
	c.buf = append(c.buf, sig...)
	c.buf = append(c.buf, "\r\nContent-Length: "...)
	c.buf = strconv.AppendInt(c.buf, int64(len(body)), 10)
	c.buf = append(c.buf, "\r\n\r\n"...)
	c.buf = append(c.buf, body...)
	if _, err := c.nc.Write(c.buf); err != nil {
		return 0, false, err
	}
	if _, err := c.r.Peek(1); err != nil {
		return 0, false, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, true, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, true, fmt.Errorf("read the answer: %w", err)
	}
	if resp.Close {
		c.close()
	}
	return resp.StatusCode, true, nil
}

func (c *conn) dial(ctx context.Context) error {
	port := c.target.Port()
	if port == "" {
		port = "80"
		if c.target.Scheme == "https" {
			port = "443"
		}
	}
	host := net.JoinHostPort(c.target.Hostname(), port)
	d := net.Dialer{Timeout: c.timeout}
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	if c.target.Scheme == "https" {
		tc := tls.Client(nc, &tls.Config{ServerName: c.target.Hostname(), NextProtos: []string{"http/1.1"}})
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return err
		}
		nc = tc
	}
	c.nc, c.r = nc, bufio.NewReaderSize(nc, 4096)
	return nil
}

func (c *conn) close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc, c.r = nil, nil
	}
}

// endpoint checks that raw is an http or https URL.
func endpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("loadgen: URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("loadgen: URL must be http://host[:port]/path or https://…")
	}
	return u, nil
}
