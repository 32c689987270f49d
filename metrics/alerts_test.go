package metrics_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/subsync/subsync/internal/testenv"
)

// TestAlertRulesComplete checks what every alert must carry: a for
// duration, a severity, a summary, a description and a runbook link to a
// section that exists in docs/operations.md.
func TestAlertRulesComplete(t *testing.T) {
	var rules ruleFile
	readYAML(t, alertsFile, &rules)
	runbook, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatalf("read %s: %v", runbookFile, err)
	}
	anchors := markdownAnchors(string(runbook))
	const prefix = "https://github.com/subsync/subsync/blob/main/docs/operations.md#"
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if r.For == "" {
				t.Errorf("alert %s: no for duration", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, key := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[key] == "" {
					t.Errorf("alert %s: no %s annotation", r.Alert, key)
				}
			}
			anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], prefix)
			if !ok {
				t.Errorf("alert %s: runbook_url %q does not start with %s", r.Alert, r.Annotations["runbook_url"], prefix)
			} else if !anchors[anchor] {
				t.Errorf("alert %s: runbook_url anchor #%s is not a heading of %s", r.Alert, anchor, runbookFile)
			}
		}
	}
	if alerts == 0 {
		t.Fatalf("%s: no alerts", alertsFile)
	}
}

// markdownAnchors returns the GitHub anchors of the headings of a Markdown
// document: lower case, punctuation dropped, spaces to hyphens.
func markdownAnchors(doc string) map[string]bool {
	anchors := map[string]bool{}
	inFence := false
	for line := range strings.Lines(doc) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
			continue
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9':
				b.WriteRune(r)
			}
		}
		anchors[b.String()] = true
	}
	return anchors
}

// TestAlertRulesPromtool runs promtool check rules on the rules and
// promtool test rules on their unit tests (promtool as testenv finds or
// installs it).
func TestAlertRulesPromtool(t *testing.T) {
	promtool := testenv.PromtoolBin(t)
	for _, args := range [][]string{
		{"check", "rules", filepath.Base(alertsFile)},
		{"test", "rules", filepath.Base(alertsTestFile)},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = filepath.Dir(alertsFile)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
