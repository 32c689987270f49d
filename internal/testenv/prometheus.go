package testenv

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/subsync/subsync/internal/childproc"
)

// Prometheus is a throwaway Prometheus server owned by one test, listening on
// 127.0.0.1 with its TSDB in a temporary directory. It is killed when the
// test ends.
type Prometheus struct {
	srv *server
}

// StartPrometheus writes config (the text of a prometheus.yml; paths in it,
// such as rule_files, should be absolute) to a fresh directory, starts
// Prometheus on a free port of 127.0.0.1 with its TSDB in that directory,
// and waits until /-/ready answers 200. A config Prometheus refuses fails
// the test with the end of its log. The binary is PROMETHEUS_BIN, else
// prometheus in PATH or /usr/bin, else installed from the Debian package
// (as root); otherwise the test fails naming the package.
func StartPrometheus(t testing.TB, config string) *Prometheus {
	t.Helper()
	bin, err := debianBin("PROMETHEUS_BIN", "prometheus", PrometheusPackage)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	dir, err := makeServerDir("subsync-prometheus-*", nil)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("testenv: write Prometheus config: %v", err)
	}
	srv := &server{
		name:   "prometheus",
		bin:    bin,
		nports: 1,
		args: func(ports []int) []string {
			return []string{
				"--config.file=" + configPath,
				"--storage.tsdb.path=" + filepath.Join(dir, "data"),
				"--web.listen-address=" + prometheusHostPort(ports[0]),
			}
		},
		ready: httpProbe(prometheusURL, "/-/ready", true),
		dir:   dir,
	}
	srv.launch(t)
	return &Prometheus{srv: srv}
}

// URL returns the server's base URL, http://127.0.0.1:<port>.
func (p *Prometheus) URL() string {
	return prometheusURL(p.srv.port(0))
}

// LogTail returns the last n lines of the server's output, for failure
// messages.
func (p *Prometheus) LogTail(n int) string {
	return childproc.Tail(p.srv.logPath(), n)
}

func prometheusHostPort(port int) string {
	return "127.0.0.1:" + strconv.Itoa(port)
}

func prometheusURL(port int) string {
	return "http://" + prometheusHostPort(port)
}
