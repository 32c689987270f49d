package webhook_test

import (
	"testing"

	"github.com/subsync/subsync/webhook"
)

// TestNewNamesTheSecretsField shows that New refuses missing or empty
// secrets with an error naming its Config field.
func TestNewNamesTheSecretsField(t *testing.T) {
	for _, c := range []struct {
		secrets []string
		want    string
	}{
		{nil, "webhook: Config.Secrets: at least one secret is required"},
		{[]string{"whsec_a", " "}, "webhook: Config.Secrets[1] is empty"},
	} {
		if _, err := webhook.New(webhook.Config{Secrets: c.secrets}, nil); err == nil || err.Error() != c.want {
			t.Errorf("New(Secrets: %q) = %v, want %q", c.secrets, err, c.want)
		}
	}
	if _, err := webhook.New(webhook.Config{Secrets: []string{"whsec_a", "whsec_b"}}, nil); err != nil {
		t.Errorf("New with two secrets: %v", err)
	}
}
