package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
	"gopkg.in/yaml.v3"

	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/internal/testenv"
)

// promWait bounds every wait on Prometheus: scrapes and rule evaluations run
// every second, so this is only reached when something is wrong (or the
// machine is very loaded).
const promWait = 90 * time.Second

// A real Prometheus scrapes the daemon and evaluates the shipped alert rules
// against what it exports: the target is up, the reconcile metrics keep
// their `job_name` next to the scrape's `job` (with honor_labels: true, so
// that a metric's own `job` or `instance` would replace the target's), 12
// signature failures and one ignored event show in the counters, in the
// recording rules and as pending alerts, and every rule of alerts.yml is
// loaded and evaluates without error.
func TestPrometheusScrapesDaemon(t *testing.T) {
	fake := stripefake.New(stripefake.Options{})
	t.Cleanup(fake.Close)
	const secret = "whsec_prom_test"
	d := startServeForTest(t, []string{
		"DATABASE_URL=" + testenv.DatabaseURL(t),
		"STRIPE_SECRET_KEY=" + fake.APIKey(),
		"STRIPE_API_BASE=" + fake.URL(),
		"STRIPE_WEBHOOK_SECRET=" + secret,
		"RECONCILE_EVENTS_SCHEDULE=",
		"RECONCILE_SUBSCRIPTIONS_SCHEDULE=",
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("subsyncd output:\n%s", d.stderr.String())
		}
	})

	rulesPath, err := filepath.Abs(filepath.Join("..", "..", "configs", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	want := promLoadRules(t, rulesPath)
	prom := testenv.StartPrometheus(t, fmt.Sprintf(`
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: subsyncd
    honor_labels: true
    static_configs:
      - targets: [%q]
`, rulesPath, d.metrics))
	pc := promClient{base: prom.URL(), http: &http.Client{Timeout: 5 * time.Second}}

	// The target is up, and the zero of invalid_signature is stored before
	// any failure, so that increase() counts all of them.
	promEventually(t, "the subsyncd target scraped", func() error {
		up, err := pc.query(`up{job="subsyncd"}`)
		if err != nil {
			return err
		}
		if len(up) != 1 || up[0].Value != 1 || up[0].Metric["instance"] != d.metrics {
			return fmt.Errorf("up = %v, want one sample 1 with instance %s", up, d.metrics)
		}
		zero, err := pc.query(`subsync_webhook_requests_total{job="subsyncd",outcome="invalid_signature"}`)
		if err != nil {
			return err
		}
		if len(zero) != 1 || zero[0].Value != 0 {
			return fmt.Errorf("invalid_signature = %v, want one sample 0", zero)
		}
		return nil
	})

	// 12 requests whose signature does not verify, three of each kind,
	// then one correctly signed event of a type the daemon does not handle.
	now := time.Now()
	for i := range 12 {
		body := promChargeEvent(t, fmt.Sprintf("evt_prom_bad_%d_%d", now.UnixNano(), i), now)
		var sig string
		switch i % 4 {
		case 0: // no header
		case 1:
			sig = "not-a-signature"
		case 2: // signed with another secret
			sig = promSign(body, "whsec_someone_else", now)
		case 3: // signed with the right secret, an hour ago
			sig = promSign(body, secret, now.Add(-time.Hour))
		}
		if code, answer := promPost(t, d.listen, body, sig); code != http.StatusBadRequest {
			t.Fatalf("bad signature %d: %d %s, want 400", i, code, answer)
		}
	}
	body := promChargeEvent(t, fmt.Sprintf("evt_prom_ok_%d", now.UnixNano()), now)
	if code, answer := promPost(t, d.listen, body, promSign(body, secret, now)); code != http.StatusOK || !strings.Contains(answer, `"ignored"`) {
		t.Fatalf("signed charge.succeeded: %d %s, want 200 ignored", code, answer)
	}

	// The raw counters, as Prometheus stored them.
	wantOutcomes := map[string]float64{"invalid_signature": 12, "ignored": 1}
	promEventually(t, "the webhook counters scraped", func() error {
		vec, err := pc.query(`subsync_webhook_requests_total{job="subsyncd"}`)
		if err != nil {
			return err
		}
		got := map[string]float64{}
		for _, s := range vec {
			got[s.Metric["outcome"]] = s.Value
		}
		for _, o := range []string{"accepted", "duplicate", "ignored", "invalid_signature", "bad_request", "too_large", "unavailable"} {
			if _, ok := got[o]; !ok {
				return fmt.Errorf("no series for outcome %s in %v", o, got)
			}
		}
		for o, v := range got {
			if v != wantOutcomes[o] {
				return fmt.Errorf("outcomes %v, want %v and the others 0", got, wantOutcomes)
			}
		}
		return nil
	})

	// The reconcile metrics name their job in `job_name`, as alerts.yml
	// assumes, next to the scrape job; nothing was renamed to exported_*.
	runs, err := pc.query(`subsync_reconcile_runs_total`)
	if err != nil {
		t.Fatal(err)
	}
	jobs := map[string]int{}
	for _, s := range runs {
		if s.Metric["job"] != "subsyncd" {
			t.Errorf("reconcile series with job %q, want subsyncd: %v", s.Metric["job"], s.Metric)
		}
		for l := range s.Metric {
			if strings.HasPrefix(l, "exported_") {
				t.Errorf("reconcile series with label %s: %v", l, s.Metric)
			}
		}
		jobs[s.Metric["job_name"]]++
	}
	if len(jobs) != 2 || jobs["events"] != 3 || jobs["subscriptions"] != 3 {
		t.Errorf("subsync_reconcile_runs_total by job_name = %v, want events and subscriptions, 3 outcomes each", jobs)
	}

	// The recording rules. increase() extrapolates to the evaluation time,
	// so the hourly count is 12 plus a fraction that shrinks as samples
	// accumulate; the ratios are exact because every outcome series shares
	// the scrape timestamps.
	promEventually(t, "the recording rules", func() error {
		sig, err := pc.scalar(`subsync:webhook_invalid_signatures:increase1h{job="subsyncd"}`)
		if err != nil {
			return err
		}
		if sig < 12 || sig >= 13 {
			return fmt.Errorf("subsync:webhook_invalid_signatures:increase1h = %g, want 12 (up to 13 with extrapolation)", sig)
		}
		ok, err := pc.scalar(`subsync:webhook_success_ratio:rate5m{job="subsyncd"}`)
		if err != nil {
			return err
		}
		if math.Abs(ok-1.0/13) > 1e-9 {
			return fmt.Errorf("subsync:webhook_success_ratio:rate5m = %g, want 1/13", ok)
		}
		dup, err := pc.scalar(`subsync:webhook_duplicate_ratio:rate5m{job="subsyncd"}`)
		if err != nil {
			return err
		}
		if dup != 0 {
			return fmt.Errorf("subsync:webhook_duplicate_ratio:rate5m = %g, want 0", dup)
		}
		return nil
	})

	// Every rule of alerts.yml is loaded and evaluates cleanly; the two
	// webhook alerts are pending (their `for` is minutes away), the others
	// stay inactive on a quiet daemon.
	pending := map[string]func(float64) bool{
		"SubsyncWebhookSignatureFailures": func(v float64) bool { return v >= 12 && v < 13 },
		"SubsyncWebhookSuccessRateLow":    func(v float64) bool { return math.Abs(v-1.0/13) < 1e-9 },
	}
	promEventually(t, "the alert rules loaded and evaluated", func() error {
		groups, err := pc.rules()
		if err != nil {
			return err
		}
		return promCheckRules(groups, want, rulesPath, pending)
	})
}

// promRule is a rule of alerts.yml.
type promRule struct {
	Record string            `yaml:"record"`
	Alert  string            `yaml:"alert"`
	Labels map[string]string `yaml:"labels"`
}

// promGroup is a rule group of alerts.yml.
type promGroup struct {
	Name  string     `yaml:"name"`
	Rules []promRule `yaml:"rules"`
}

// promLoadRules reads the rule groups of a Prometheus rule file.
func promLoadRules(t *testing.T, path string) []promGroup {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []promGroup `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	n := 0
	for _, g := range f.Groups {
		n += len(g.Rules)
	}
	if n == 0 {
		t.Fatalf("%s defines no rules", path)
	}
	return f.Groups
}

// promAPIRule is a rule as /api/v1/rules reports it.
type promAPIRule struct {
	Name      string            `json:"name"`
	Type      string            `json:"type"`
	Health    string            `json:"health"`
	LastError string            `json:"lastError"`
	State     string            `json:"state"`
	Labels    map[string]string `json:"labels"`
	Alerts    []struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		State       string            `json:"state"`
		Value       string            `json:"value"`
	} `json:"alerts"`
}

// promAPIGroup is a rule group as /api/v1/rules reports it.
type promAPIGroup struct {
	Name  string        `json:"name"`
	File  string        `json:"file"`
	Rules []promAPIRule `json:"rules"`
}

// promCheckRules compares the groups Prometheus runs with those of the rule
// file: same groups and rules in the same order, every rule healthy, the
// alerts named in pending pending (one alert for job subsyncd, whose value
// satisfies the check, with the file's labels and annotations that
// expanded), every other alert inactive.
func promCheckRules(got []promAPIGroup, want []promGroup, file string, pending map[string]func(float64) bool) error {
	if len(got) != len(want) {
		return fmt.Errorf("Prometheus runs %d rule groups, %s has %d", len(got), file, len(want))
	}
	seen := map[string]bool{}
	for i, wg := range want {
		g := got[i]
		if g.Name != wg.Name || g.File != file {
			return fmt.Errorf("group %d is %q from %s, want %q from %s", i, g.Name, g.File, wg.Name, file)
		}
		if len(g.Rules) != len(wg.Rules) {
			return fmt.Errorf("group %s: %d rules loaded, %d in the file", g.Name, len(g.Rules), len(wg.Rules))
		}
		for j, wr := range wg.Rules {
			r := g.Rules[j]
			name, typ := wr.Record, "recording"
			if wr.Alert != "" {
				name, typ = wr.Alert, "alerting"
			}
			if r.Name != name || r.Type != typ {
				return fmt.Errorf("rule %d of %s is %s %q, want %s %q", j, g.Name, r.Type, r.Name, typ, name)
			}
			if r.Health != "ok" || r.LastError != "" {
				return fmt.Errorf("rule %s: health %q, last error %q", r.Name, r.Health, r.LastError)
			}
			if typ == "recording" {
				continue
			}
			check, wantPending := pending[name]
			if !wantPending {
				if r.State != "inactive" || len(r.Alerts) != 0 {
					return fmt.Errorf("alert %s is %s with %d alerts, want inactive", name, r.State, len(r.Alerts))
				}
				continue
			}
			seen[name] = true
			if r.State != "pending" || len(r.Alerts) != 1 {
				return fmt.Errorf("alert %s is %s with %d alerts, want pending with one", name, r.State, len(r.Alerts))
			}
			a := r.Alerts[0]
			v, err := strconv.ParseFloat(a.Value, 64)
			if err != nil || !check(v) {
				return fmt.Errorf("alert %s has value %q", name, a.Value)
			}
			if a.State != "pending" || a.Labels["alertname"] != name || a.Labels["job"] != "subsyncd" {
				return fmt.Errorf("alert %s: state %s, labels %v", name, a.State, a.Labels)
			}
			for k, v := range wr.Labels {
				if a.Labels[k] != v {
					return fmt.Errorf("alert %s: label %s = %q, want %q", name, k, a.Labels[k], v)
				}
			}
			for _, k := range []string{"summary", "description", "runbook_url"} {
				if s := a.Annotations[k]; s == "" || strings.Contains(s, "<error") {
					return fmt.Errorf("alert %s: annotation %s = %q", name, k, s)
				}
			}
			if !strings.Contains(a.Annotations["description"], "subsyncd") {
				return fmt.Errorf("alert %s: description does not name the job: %q", name, a.Annotations["description"])
			}
		}
	}
	for name := range pending {
		if !seen[name] {
			return fmt.Errorf("alert %s is not in %s", name, file)
		}
	}
	return nil
}

// promSample is one element of an instant vector.
type promSample struct {
	Metric map[string]string
	Value  float64
}

func (s promSample) String() string { return fmt.Sprintf("%v=%g", s.Metric, s.Value) }

// promClient queries Prometheus's HTTP API.
type promClient struct {
	base string
	http *http.Client
}

// api GETs path with query and decodes the data of a successful answer.
func (c promClient) api(path string, query url.Values, data any) error {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	resp, err := c.http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("GET %s: %s: %.300s", u, resp.Status, b)
	}
	if resp.StatusCode != http.StatusOK || env.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

// query evaluates expr now and returns the instant vector.
func (c promClient) query(expr string) ([]promSample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := c.api("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("%s: result type %s, want vector", expr, data.ResultType)
	}
	var out []promSample
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: value %v: %w", expr, r.Value[1], err)
		}
		out = append(out, promSample{Metric: r.Metric, Value: v})
	}
	slices.SortFunc(out, func(a, b promSample) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

// scalar evaluates expr, which must give exactly one sample, and returns
// its value.
func (c promClient) scalar(expr string) (float64, error) {
	vec, err := c.query(expr)
	if err != nil {
		return 0, err
	}
	if len(vec) != 1 {
		return 0, fmt.Errorf("%s = %v, want one sample", expr, vec)
	}
	return vec[0].Value, nil
}

// rules returns the rule groups Prometheus runs.
func (c promClient) rules() ([]promAPIGroup, error) {
	var data struct {
		Groups []promAPIGroup `json:"groups"`
	}
	if err := c.api("/api/v1/rules", nil, &data); err != nil {
		return nil, err
	}
	return data.Groups, nil
}

// promEventually polls check until it returns nil, failing the test with
// its last error after promWait.
func promEventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(promWait)
	for {
		err := check()
		if err == nil {
			t.Logf("%s: after %s", what, time.Since(deadline.Add(-promWait)).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %v", promWait, what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// promChargeEvent is a charge.succeeded event, a type subsyncd ignores.
func promChargeEvent(t *testing.T, id string, created time.Time) []byte {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": "2023-10-16", "type": "charge.succeeded",
		"created": created.Unix(), "livemode": false, "pending_webhooks": 1,
		"data": map[string]any{"object": map[string]any{
			"id": "ch_" + strings.TrimPrefix(id, "evt_"), "object": "charge", "amount": 1000, "currency": "usd",
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// promSign returns the Stripe-Signature header for body signed with secret
// at ts.
func promSign(body []byte, secret string, ts time.Time) string {
	return fmt.Sprintf("t=%d,v1=%s", ts.Unix(), hex.EncodeToString(webhook.ComputeSignature(ts, body, secret)))
}

// promPost posts body to the daemon's webhook endpoint with sig as
// Stripe-Signature (none when empty).
func promPost(t *testing.T, addr string, body []byte, sig string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/stripe", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("Stripe-Signature", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
