package testenv

// The versions of the tools the tests run, in one place. A tool a Go module
// provides is installed with go install into a directory of its own under
// the user cache directory (see toolBin); one a Debian package provides is
// named here so that a missing binary fails with the package to install.
const (
	// StripeMockModule is the module stripe-mock is installed from.
	StripeMockModule = "github.com/stripe/stripe-mock"
	// StripeMockVersion speaks Stripe API version 2023-10-16, the version
	// stripe-go v76 pins: requests are checked against it.
	StripeMockVersion = "v0.183.0"
	// StripeMockLatestRelease embeds the OpenAPI description of
	// StripeMockLatestVersion.
	StripeMockLatestRelease = "v0.203.0"
	// StripeMockLatestVersion is the API version StripeMockLatest describes.
	StripeMockLatestVersion = "2026-08-26.dahlia"

	// StripeMockInstall is the command that installs the stripe-mock the
	// tests check requests against.
	StripeMockInstall = "go install " + StripeMockModule + "@" + StripeMockVersion
	// StripeMockLatest is the stripe-mock release whose embedded OpenAPI
	// description is of API version StripeMockLatestVersion: its
	// subscriptions carry their billing period only on their items, its
	// invoices name their subscription under parent.subscription_details.
	StripeMockLatest = StripeMockModule + "@" + StripeMockLatestRelease

	// PostgresPackage is the Debian package with initdb and postgres.
	PostgresPackage = "postgresql"
	// RedisPackage is the Debian package with redis-server.
	RedisPackage = "redis-server"
	// PrometheusPackage is the Debian package that ships the prometheus
	// server and promtool.
	PrometheusPackage = "prometheus"
)
