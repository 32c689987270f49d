package testenv

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Redis is a throwaway redis-server owned by one test, listening on
// 127.0.0.1, keeping nothing on disk: Stop loses its data and Start brings
// it back empty on the same port. It is stopped when the test ends.
type Redis struct {
	control
}

// StartRedis starts redis-server (from PATH) on a free port and waits until
// it answers PING.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return &Redis{startControl(t, newRedisServer, "subsync-redis-*")}
}

// newRedisServer returns a redis-server with a new directory named after
// pattern, not started yet.
func newRedisServer(pattern string) (*server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found in PATH: %w\ninstall the Debian package %s (apt-get install -y %s)",
			err, RedisPackage, RedisPackage)
	}
	dir, err := makeServerDir(pattern, nil)
	if err != nil {
		return nil, err
	}
	return &server{
		name:   "redis-server",
		bin:    bin,
		nports: 1,
		args: func(ports []int) []string {
			return []string{
				"--port", strconv.Itoa(ports[0]),
				"--bind", "127.0.0.1",
				"--save", "",
				"--appendonly", "no",
				"--daemonize", "no",
				"--dir", dir,
				"--logfile", "",
			}
		},
		ready: func(ports []int) error {
			return redisPing(redisHostPort(ports[0]), nil, 2*time.Second)
		},
		dir:     dir,
		timeout: 30 * time.Second,
	}, nil
}

// URL returns redis://127.0.0.1:<port>/0, the same across Stop and Start.
func (r *Redis) URL() string {
	return "redis://" + r.Addr() + "/0"
}

// Addr returns the server's host:port.
func (r *Redis) Addr() string {
	return redisHostPort(r.srv.port(0))
}

func redisHostPort(port int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// redisPing checks that the Redis at addr answers PING, sending AUTH with
// the arguments auth first when there are any.
func redisPing(addr string, auth []string, timeout time.Duration) error {
	var cmds [][]string
	if len(auth) > 0 {
		cmds = append(cmds, append([]string{"AUTH"}, auth...))
	}
	cmds = append(cmds, []string{"PING"})
	replies, err := redisDo(addr, timeout, cmds...)
	if err != nil {
		return err
	}
	if got := replies[len(replies)-1]; got != "PONG" {
		return fmt.Errorf("PING answered %q", got)
	}
	return nil
}

// redisDo sends commands over one connection and returns their replies as
// strings (simple strings, bulk strings and integers; "" for a nil bulk).
// An error reply becomes an error. It is a minimal RESP2 client for checks.
func redisDo(addr string, timeout time.Duration, cmds ...[]string) ([]string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, fmt.Errorf("dial redis %s: %w", addr, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, fmt.Errorf("redis %s: %w", addr, err)
	}
	var req strings.Builder
	for _, cmd := range cmds {
		fmt.Fprintf(&req, "*%d\r\n", len(cmd))
		for _, arg := range cmd {
			fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(arg), arg)
		}
	}
	if _, err := conn.Write([]byte(req.String())); err != nil {
		return nil, fmt.Errorf("write to redis %s: %w", addr, err)
	}
	r := bufio.NewReader(conn)
	replies := make([]string, 0, len(cmds))
	for _, cmd := range cmds {
		reply, err := readRedisReply(r)
		if err != nil {
			return nil, fmt.Errorf("redis %s %s: %w", addr, cmd[0], err)
		}
		replies = append(replies, reply)
	}
	return replies, nil
}

func readRedisReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read reply: %w", err)
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("error reply: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("bad bulk length %q: %w", line, err)
		}
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("read bulk reply: %w", err)
		}
		return string(buf[:n]), nil
	default:
		return "", fmt.Errorf("unsupported reply %q", line)
	}
}
