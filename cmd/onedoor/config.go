package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
	"github.com/onedoor/onedoor/idp/clientaddr"
	"github.com/onedoor/onedoor/idp/oidc"
	"github.com/onedoor/onedoor/idp/postgres"
	"github.com/onedoor/onedoor/idp/web"
	"github.com/onedoor/onedoor/mobileapi/fiberapi"
)

// Config is everything OneDoor reads at start. Every flag has an ONEDOOR_*
// environment equivalent (--idp-addr is ONEDOOR_IDP_ADDR); a flag given on
// the command line wins.
type Config struct {
	IDPAddr string
	APIAddr string
	// APIURL is the mobile API's public URL: the audience of the tokens it
	// accepts. Empty means http://localhost:PORT of APIAddr.
	APIURL      string
	Issuer      string
	DataDir     string
	PostgresDSN string
	RedisURL    string
	RedisPrefix string
	// RedisCluster reads RedisURL as a Redis Cluster's seed nodes
	// (go-redis ParseClusterURL) and implies RedisShardedPubSub.
	RedisCluster bool
	// RedisShardedPubSub makes wake-ups and live streams use sharded
	// Pub/Sub (SPUBLISH/SSUBSCRIBE, Redis 7), as a cluster needs.
	RedisShardedPubSub bool
	MasterKeyFile      string
	Demo               bool
	DemoRPAddr         string
	LogLevel           string

	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
	RefreshGrace    time.Duration
	SessionTTL      time.Duration
	ShutdownGrace   time.Duration
	ShutdownDelay   time.Duration
	RequestTimeout  time.Duration
	// DPoPNonce makes the token endpoint require a server nonce in DPoP
	// proofs (RFC 9449 section 8): on by default.
	DPoPNonce bool
	// LoginRateLimit caps new login requests per client address per minute.
	LoginRateLimit int
	// TrustedProxies is a comma-separated list of CIDRs whose
	// X-Forwarded-For and Forwarded headers are believed.
	TrustedProxies string
	// PARLifetime is how long a pushed authorization request's request_uri
	// can be used (RFC 9126; no flag: 90 s fits a redirect; tests shorten it).
	PARLifetime time.Duration
	// Limits are the other rate limits (no flags: the defaults are sized for
	// carrier-grade NAT; tests lower them).
	Limits web.Limits
	// Resources are the resource servers (RFC 8707) access tokens may be
	// minted for, besides the IdP's userinfo.
	Resources []string
	// BlobDir holds attachments and result documents; empty means
	// DATA-DIR/blobs. Replicas must share it (until an S3 store lands).
	BlobDir string
	// APICitizenRateLimit and APIAgencyRateLimit are the mobile API's
	// requests per minute per citizen and per agency client.
	APICitizenRateLimit, APIAgencyRateLimit int
	// APIAuthFailureLimit is how many failed authentications one client
	// address may cause on the mobile API per minute (sized for
	// carrier-grade NAT: fiberapi.DefaultAuthFailureLimit).
	APIAuthFailureLimit int
	// APIAuthFailureAddrs is how many client addresses that limit counts
	// per minute per replica (no flag: tests shrink it); 0 means
	// fiberapi.DefaultAuthFailureAddrs.
	APIAuthFailureAddrs int
	// APIOutageLogEvery is how often the mobile API repeats a store
	// outage's warning per cause (no flag: tests shorten it); 0 means
	// fiberapi's default.
	APIOutageLogEvery time.Duration
	// APIDataRequestRateLimit is how many data requests one agency (all
	// its clients together) may make per minute.
	APIDataRequestRateLimit int
	// WebhookAllowPrivate lets webhooks reach loopback and private
	// addresses: for the demo and tests, never in production (SSRF).
	WebhookAllowPrivate bool
	// WebhookBackoff is the first retry's upper bound (no flag: tests
	// shorten it); 0 means the worker's default.
	WebhookBackoff time.Duration
	// AuditCheckpointInterval is how often the access log's chain heads
	// are committed to a signed checkpoint.
	AuditCheckpointInterval time.Duration
	// AuditWitnesses are the witnesses (c2sp.org/tlog-witness) that
	// cosign the checkpoints, each "vkey@url"; AuditWitnessQuorum is how
	// many must cosign a size for `onedoor audit verify` to count it as
	// witnessed (0: all of them).
	AuditWitnesses     []string
	AuditWitnessQuorum int
	// BlobSweepEvery is how often `serve` sweeps orphaned blobs (no flag:
	// tests shorten it); 0 means every 15 minutes.
	BlobSweepEvery time.Duration
	// RedisStoreIDEvery is how often `serve` writes back the Redis store
	// id if Redis lost it (no flag: tests shorten it); 0 means every minute.
	RedisStoreIDEvery time.Duration
	// IOSAppIDs, AndroidApp and AndroidCertSHA256 are the eID apps that
	// claim the https app link (ISSUER/app/login); AppStoreURL and
	// PlayStoreURL are their store pages, shown when the app is missing.
	IOSAppIDs                 []string
	AndroidApp                string
	AndroidCertSHA256         []string
	AppStoreURL, PlayStoreURL string
	// Brand* name the platform in the header of every IdP page; BrandFile
	// is a JSON theme (web.Brand's fields) the flags override.
	BrandName, BrandHelpURL, BrandHotline, BrandPrivacyURL, BrandFile string
	// LoginTTL is how long a login request waits for the app (no flag:
	// tests shorten it); 0 means eid.MaxLoginTTL.
	LoginTTL time.Duration
	PushConfig
}

// blobDir is where files are kept.
func (c *Config) blobDir() string {
	if c.BlobDir != "" {
		return c.BlobDir
	}
	return filepath.Join(c.DataDir, "blobs")
}

// commaList is a flag of comma-separated values. Given more than once, the
// values add up (two signing certificates during a key rotation); the first
// use replaces the default.
type commaList struct {
	v   *[]string
	set bool
}

func (l *commaList) String() string {
	if l == nil || l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

func (l *commaList) Set(s string) error {
	if !l.set {
		*l.v, l.set = nil, true
	}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l.v = append(*l.v, p)
		}
	}
	return nil
}

// DefaultConfig is the embedded default: SQLite in ./onedoor-data, no Redis.
func DefaultConfig() Config {
	return Config{
		IDPAddr:             "127.0.0.1:8080",
		APIAddr:             "127.0.0.1:8081",
		APICitizenRateLimit: 600,
		APIAgencyRateLimit:  6000,
		APIAuthFailureLimit: fiberapi.DefaultAuthFailureLimit,
		DataDir:             "./onedoor-data",
		DemoRPAddr:          "127.0.0.1:8090",
		LogLevel:            "info",
		AccessTokenTTL:      10 * time.Minute,
		PARLifetime:         90 * time.Second,
		RefreshTokenTTL:     30 * 24 * time.Hour,
		RefreshGrace:        30 * time.Second,
		SessionTTL:          8 * time.Hour,
		ShutdownGrace:       10 * time.Second,
		ShutdownDelay:       2 * time.Second,
		RequestTimeout:      10 * time.Second,
		DPoPNonce:           true,
		RedisPrefix:         "onedoor:",
		LoginRateLimit:      600,

		AuditCheckpointInterval: time.Minute,
		// A data request is a release logged in the citizen's chain: an
		// agency's batch jobs go at 50 a second, not at the full API rate.
		APIDataRequestRateLimit: 3000,
		PushConfig:              PushConfig{PushRetention: 30 * 24 * time.Hour},
	}
}

// storageFlags registers the flags every command that touches storage takes.
func (c *Config) storageFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of the embedded SQLite database and master key")
	fs.StringVar(&c.PostgresDSN, "postgres-dsn", c.PostgresDSN, "PostgreSQL connection string; when set, durable data goes to PostgreSQL instead of SQLite")
	fs.StringVar(&c.MasterKeyFile, "master-key-file", c.MasterKeyFile, "file holding the 32-byte master key (base64) that encrypts signing keys; default DATA-DIR/master.key; ONEDOOR_MASTER_KEY overrides")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
}

// redisFlags registers where the ephemeral store is: serve's, and an admin
// command's that ends sessions (citizen lock), which must reach the same
// store.
func (c *Config) redisFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis URL (redis://host:port/db); when set, sessions, codes and counters go to Redis. With --redis-cluster: redis://host:port?addr=host2:port2&addr=host3:port3, any reachable nodes of the cluster")
	fs.BoolVar(&c.RedisCluster, "redis-cluster", c.RedisCluster, "Redis runs as a Redis Cluster (multi-shard, Redis 7+): --redis-url names its seed nodes; implies --redis-sharded-pubsub")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", c.RedisPrefix, "prefix of every Redis key, to share one Redis between deployments")
}

// serveFlags registers the server's flags.
func (c *Config) serveFlags(fs *flag.FlagSet) {
	c.storageFlags(fs)
	fs.StringVar(&c.IDPAddr, "idp-addr", c.IDPAddr, "listen address of the identity provider")
	fs.StringVar(&c.APIAddr, "api-addr", c.APIAddr, "listen address of the mobile API")
	fs.StringVar(&c.APIURL, "api-url", c.APIURL, "public URL of the mobile API, the audience of its tokens (default http://localhost:PORT of --api-addr)")
	fs.StringVar(&c.Issuer, "issuer", c.Issuer, "public URL of the identity provider, the OIDC issuer (default http://localhost:PORT of a loopback --idp-addr; required otherwise)")
	c.redisFlags(fs)
	fs.BoolVar(&c.RedisShardedPubSub, "redis-sharded-pubsub", c.RedisShardedPubSub, "use sharded Pub/Sub (SPUBLISH/SSUBSCRIBE, Redis 7+) for login wake-ups and live streams; every replica must agree. Always on with --redis-cluster, where each message then stays within its channel's shard; on one Redis node it only needs Redis 7")
	fs.IntVar(&c.LoginRateLimit, "login-rate-limit", c.LoginRateLimit, "new login requests allowed per client address (IPv6: per /64) per minute; sized for carrier-grade NAT")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", c.TrustedProxies, "comma-separated CIDRs of the proxies whose X-Forwarded-For and Forwarded headers name the client; without it the peer address counts")
	fs.BoolVar(&c.Demo, "demo", c.Demo, "seed clearly fake demo data and serve a demo agency site")
	fs.StringVar(&c.DemoRPAddr, "demo-rp-addr", c.DemoRPAddr, "listen address of the demo agency site (with --demo)")
	fs.Var(&commaList{v: &c.Resources}, "resources", "comma-separated resource servers (absolute URIs, RFC 8707) access tokens may be minted for; the IdP's userinfo is always one and is the default audience")
	fs.DurationVar(&c.AccessTokenTTL, "access-token-ttl", c.AccessTokenTTL, "access token lifetime")
	fs.DurationVar(&c.RefreshTokenTTL, "refresh-token-ttl", c.RefreshTokenTTL, "refresh token lifetime")
	fs.DurationVar(&c.RefreshGrace, "refresh-grace", c.RefreshGrace, "how long a rotated refresh token may still be redeemed")
	fs.DurationVar(&c.SessionTTL, "session-ttl", c.SessionTTL, "single sign-on session lifetime")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", c.ShutdownGrace, "how long in-flight requests may take after SIGTERM")
	fs.DurationVar(&c.ShutdownDelay, "shutdown-delay", c.ShutdownDelay, "how long /readyz answers 503 before the listener closes on SIGTERM, so load balancers stop sending first")
	fs.BoolVar(&c.DPoPNonce, "dpop-nonce", c.DPoPNonce, "require a server nonce (DPoP-Nonce) in DPoP proofs at the token endpoint")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", c.RequestTimeout, "deadline of every request's store calls; past it the request answers 503")
	fs.StringVar(&c.BlobDir, "blob-dir", c.BlobDir, "directory of uploaded attachments and result documents (default DATA-DIR/blobs); replicas must share it")
	fs.IntVar(&c.APICitizenRateLimit, "api-citizen-rate-limit", c.APICitizenRateLimit, "mobile API requests allowed per citizen per minute")
	fs.IntVar(&c.APIAgencyRateLimit, "api-agency-rate-limit", c.APIAgencyRateLimit, "mobile API requests allowed per agency client per minute")
	c.auditWitnessFlags(fs)
	fs.DurationVar(&c.AuditCheckpointInterval, "audit-checkpoint-interval", c.AuditCheckpointInterval, "how often the access log's chain heads are committed to a signed checkpoint (what `onedoor audit verify` holds an operator's rewrite against)")
	fs.IntVar(&c.APIAuthFailureLimit, "api-auth-failure-limit", c.APIAuthFailureLimit, "mobile API requests without a valid token allowed per client address (IPv6: per /64) per minute; past it they get 429 before any token check")
	fs.IntVar(&c.APIDataRequestRateLimit, "api-data-request-rate-limit", c.APIDataRequestRateLimit, "data requests (POST /agency/v1/data-requests) allowed per agency, all its clients together, per minute")
	fs.Var(&commaList{v: &c.IOSAppIDs}, "ios-app-id", "comma-separated iOS eID apps (TEAMID.bundle.id) that open the https app link ISSUER/app/login; served in /.well-known/apple-app-site-association (404 when unset)")
	fs.StringVar(&c.AndroidApp, "android-app", c.AndroidApp, "package name of the Android eID app that opens the https app link; served in /.well-known/assetlinks.json (404 when unset) with --android-cert-sha256")
	fs.Var(&commaList{v: &c.AndroidCertSHA256}, "android-cert-sha256", "comma-separated SHA-256 fingerprints (AA:BB:…, as keytool prints them) of the Android eID app's signing certificates")
	fs.StringVar(&c.AppStoreURL, "app-store-url", c.AppStoreURL, "https URL of the eID app on the App Store, linked from the page shown when the app is not installed (hidden when unset)")
	fs.StringVar(&c.PlayStoreURL, "play-store-url", c.PlayStoreURL, "https URL of the eID app on Google Play, linked from the page shown when the app is not installed (hidden when unset)")
	fs.BoolVar(&c.WebhookAllowPrivate, "webhook-allow-private", c.WebhookAllowPrivate, "let agency webhooks reach loopback and private addresses (demo and tests only: it opens the server to SSRF)")
	fs.StringVar(&c.BrandName, "brand-name", c.BrandName, "platform name in the header of the login, logout, account and error pages (default OneDoor)")
	fs.StringVar(&c.BrandHelpURL, "brand-help-url", c.BrandHelpURL, "absolute http(s) URL of the citizens' help page, linked from every page's header (none when unset)")
	fs.StringVar(&c.BrandHotline, "brand-hotline", c.BrandHotline, "hotline phone number shown in every page's header (none when unset)")
	fs.StringVar(&c.BrandPrivacyURL, "brand-privacy-url", c.BrandPrivacyURL, "absolute http(s) URL of the privacy policy, linked from every page's header (none when unset)")
	fs.StringVar(&c.BrandFile, "brand-file", c.BrandFile, `JSON theme {"name", "names": {"vi", "en"}, "help_url", "hotline", "privacy_url"}; the --brand-* flags override its fields`)
	c.pushFlags(fs)
}

// Brand is the pages' header: the --brand-file theme with the --brand-*
// flags over it. Problems name what is wrong.
func (c *Config) Brand() (web.Brand, []string) {
	var b web.Brand
	var probs []string
	if c.BrandFile != "" {
		raw, err := os.ReadFile(c.BrandFile)
		if err != nil {
			probs = append(probs, fmt.Sprintf("--brand-file: %v", err))
		} else {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&b); err != nil {
				probs = append(probs, fmt.Sprintf("--brand-file %s: not a brand theme (fields name, names, help_url, hotline, privacy_url): %v", c.BrandFile, err))
			}
		}
	}
	for _, f := range []struct{ flag, into *string }{{&c.BrandName, &b.Name}, {&c.BrandHelpURL, &b.HelpURL}, {&c.BrandHotline, &b.Hotline}, {&c.BrandPrivacyURL, &b.PrivacyURL}} {
		if *f.flag != "" {
			*f.into = strings.TrimSpace(*f.flag)
		}
	}
	if c.BrandName != "" {
		// A name on the command line is the name in every language.
		b.Names = nil
	}
	return b, append(probs, b.Problems()...)
}

// parseFlags parses args, then fills every flag not given on the command
// line from its ONEDOOR_* environment variable.
func parseFlags(fs *flag.FlagSet, args []string, env func(string) string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &helpRequest{fs: fs}
		}
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		name := EnvName(f.Name)
		if v := env(name); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %v", name, err))
			}
		}
	})
	return errors.Join(errs...)
}

// helpRequest is -h or --help: run prints the usage and the command's
// flags with their defaults to stdout and exits 0.
type helpRequest struct{ fs *flag.FlagSet }

func (h *helpRequest) Error() string { return "help requested" }
func (h *helpRequest) Unwrap() error { return flag.ErrHelp }

// print writes every flag of the command with its default and its
// environment variable.
func (h *helpRequest) print(w io.Writer) {
	fmt.Fprintf(w, "\nflags of %s (each also read from ONEDOOR_<NAME>):\n", h.fs.Name())
	h.fs.SetOutput(w)
	h.fs.PrintDefaults()
}

// auditWitnessFlags are the witnesses' flags, of serve and audit verify.
func (c *Config) auditWitnessFlags(fs *flag.FlagSet) {
	fs.Var(&commaList{v: &c.AuditWitnesses}, "audit-witness", "a witness that cosigns the access log's checkpoints (c2sp.org/tlog-witness), as NAME+KEYHASH+KEY@URL (its cosignature/v1 verifier key and its https prefix); repeatable or comma-separated")
	fs.IntVar(&c.AuditWitnessQuorum, "audit-witness-quorum", c.AuditWitnessQuorum, "how many --audit-witness must cosign a checkpoint for `onedoor audit verify` to report it witnessed (0: all)")
}

// Witnesses parses --audit-witness.
func (c *Config) Witnesses() ([]*consent.Witness, error) {
	var (
		out  []*consent.Witness
		errs []error
		seen = map[string]bool{}
	)
	for _, spec := range c.AuditWitnesses {
		w, err := consent.ParseWitness(spec)
		if err != nil {
			errs = append(errs, fmt.Errorf("--audit-witness %q: %v", spec, err))
			continue
		}
		if u, err := url.Parse(w.URL); err != nil || u.Host == "" || (u.Scheme == "http" && !loopbackHost(u.Hostname())) {
			errs = append(errs, fmt.Errorf("--audit-witness %s: the URL must be https (http only on loopback)", w.Name))
			continue
		}
		// One witness twice (by name, key or URL) would count twice
		// towards the quorum.
		if seen[w.Name] || seen["key "+string(w.Key)] || seen["url "+w.URL] {
			errs = append(errs, fmt.Errorf("--audit-witness %s: the same witness (name, key or URL) is given twice", w.Name))
			continue
		}
		seen[w.Name], seen["key "+string(w.Key)], seen["url "+w.URL] = true, true, true
		out = append(out, w)
	}
	return out, errors.Join(errs...)
}

// WitnessQuorum is --audit-witness-quorum with 0 meaning every witness.
func (c *Config) WitnessQuorum() int {
	if c.AuditWitnessQuorum == 0 {
		return len(c.AuditWitnesses)
	}
	return c.AuditWitnessQuorum
}

// EnvName is the environment variable of a flag.
func EnvName(flagName string) string {
	return "ONEDOOR_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Validate reports every problem at once.
func (c *Config) Validate(serve bool) error {
	var probs []string
	add := func(format string, a ...any) { probs = append(probs, fmt.Sprintf(format, a...)) }
	if c.PostgresDSN == "" && strings.TrimSpace(c.DataDir) == "" {
		add("--data-dir must not be empty")
	}
	if c.PostgresDSN != "" {
		if u, err := url.Parse(c.PostgresDSN); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql" && !strings.Contains(c.PostgresDSN, "=")) {
			add("--postgres-dsn must be a postgres:// URL or a key=value connection string")
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("--log-level must be debug, info, warn or error (got %q)", c.LogLevel)
	}
	if c.RedisURL != "" {
		if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			add("--redis-url must be a redis://, rediss:// or unix:// URL")
		}
		if c.RedisPrefix == "" {
			add("--redis-prefix must not be empty")
		}
	}
	if c.RedisCluster {
		if c.RedisURL == "" {
			add("--redis-cluster needs --redis-url")
		} else if u, err := url.Parse(c.RedisURL); err == nil && u.Scheme == "unix" {
			add("--redis-cluster needs a redis:// or rediss:// --redis-url, not unix://")
		} else if u != nil && strings.Trim(u.Path, "/") != "" && strings.Trim(u.Path, "/") != "0" {
			add("--redis-url of a cluster may not name a database: a cluster has only database 0")
		}
	}
	if _, err := c.Witnesses(); err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			add("%s", e)
		}
	}
	if c.AuditWitnessQuorum < 0 || c.AuditWitnessQuorum > len(c.AuditWitnesses) {
		add("--audit-witness-quorum must be between 0 and the number of --audit-witness (%d), got %d", len(c.AuditWitnesses), c.AuditWitnessQuorum)
	}
	if !serve {
		return joinProblems(probs)
	}
	for _, a := range []struct{ name, v string }{{"--idp-addr", c.IDPAddr}, {"--api-addr", c.APIAddr}, {"--demo-rp-addr", c.DemoRPAddr}} {
		if _, port, err := net.SplitHostPort(a.v); err != nil || port == "" {
			add("%s must be host:port (got %q)", a.name, a.v)
		}
	}
	if c.Issuer == "" {
		// The default issuer is the loopback address the IdP listens on; a
		// server reachable from elsewhere must say how it is reached.
		if host, _, err := net.SplitHostPort(c.IDPAddr); err == nil && !loopbackHost(host) {
			add("--issuer is required when --idp-addr listens beyond loopback (got --idp-addr %q): set the public https URL clients use", c.IDPAddr)
		}
	}
	if c.IDPAddr == c.APIAddr {
		add("--idp-addr and --api-addr must differ")
	}
	if c.PushRetention <= 0 {
		add("--push-retention must be positive (got %s)", c.PushRetention)
	}
	if c.APNsKey == "" && (c.APNsKeyID != "" || c.APNsTeamID != "" || c.APNsTopic != "" || c.APNsEndpoint != "") {
		add("--apns-key-id, --apns-team-id, --apns-topic and --apns-endpoint need --apns-key (the .p8 key file)")
	}
	if c.APNsKey != "" && (c.APNsKeyID == "" || c.APNsTeamID == "" || c.APNsTopic == "") {
		add("--apns-key needs --apns-key-id, --apns-team-id and --apns-topic")
	}
	// Empty: http://localhost:PORT of the bound --api-addr (see Run).
	if c.APIURL != "" {
		c.APIURL = strings.TrimRight(c.APIURL, "/")
		if u, err := url.Parse(c.APIURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			add("--api-url must be an absolute http(s) URL without user, query or fragment (got %q)", c.APIURL)
		} else if u.Scheme == "http" && !idp.Loopback(u.Hostname()) {
			add("--api-url must use https except on localhost (got %q)", c.APIURL)
		}
	}
	c.Issuer = strings.TrimRight(c.Issuer, "/")
	if c.Issuer != "" {
		if u, err := url.Parse(c.Issuer); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.Fragment != "" {
			add("--issuer must be an absolute http(s) URL without query or fragment (got %q)", c.Issuer)
		} else {
			if u.Scheme == "http" && !idp.Loopback(u.Hostname()) {
				add("--issuer must use https except on localhost (got %q)", c.Issuer)
			}
			if u.User != nil {
				add("--issuer must not carry user information")
			}
			if !issuerPathRE.MatchString(u.EscapedPath()) {
				add("--issuer path may hold only letters, digits and . _ ~ - between slashes (got %q)", u.EscapedPath())
			}
		}
	}
	if _, err := clientaddr.ParsePrefixes(c.TrustedProxies); err != nil {
		add("--trusted-proxies: %v", err)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--access-token-ttl", c.AccessTokenTTL}, {"--refresh-token-ttl", c.RefreshTokenTTL}, {"--session-ttl", c.SessionTTL}, {"--shutdown-grace", c.ShutdownGrace}, {"--request-timeout", c.RequestTimeout},
		{"--audit-checkpoint-interval", c.AuditCheckpointInterval}} {
		if d.v <= 0 {
			add("%s must be positive (got %s)", d.name, d.v)
		}
	}
	if c.PushLease != 0 && c.PushLease < time.Second {
		add("--push-lease must be at least 1s, or 0 for the default (got %s)", c.PushLease)
	}
	if c.ShutdownDelay < 0 {
		add("--shutdown-delay must not be negative (got %s)", c.ShutdownDelay)
	}
	if c.PostgresDSN != "" && c.BlobDir == "" {
		// Replicas on PostgreSQL would each keep files on their own disk and
		// answer each other's downloads with an error.
		add("with --postgres-dsn, --blob-dir must name the directory every replica shares for attachments and results")
	}
	if c.APIAuthFailureLimit <= 0 {
		add("--api-auth-failure-limit must be positive (got %d)", c.APIAuthFailureLimit)
	}
	if c.APICitizenRateLimit <= 0 || c.APIAgencyRateLimit <= 0 || c.APIDataRequestRateLimit <= 0 {
		add("--api-citizen-rate-limit, --api-agency-rate-limit and --api-data-request-rate-limit must be positive (got %d, %d and %d)",
			c.APICitizenRateLimit, c.APIAgencyRateLimit, c.APIDataRequestRateLimit)
	}
	if c.LoginRateLimit <= 0 {
		add("--login-rate-limit must be positive (got %d)", c.LoginRateLimit)
	}
	if c.RedisShardedPubSub && c.RedisURL == "" {
		add("--redis-sharded-pubsub needs --redis-url")
	}
	if c.RefreshGrace < 0 || c.RefreshGrace > 5*time.Minute {
		add("--refresh-grace must be between 0 and 5m (got %s)", c.RefreshGrace)
	}
	for _, r := range c.Resources {
		if err := oidc.ValidResource(r); err != nil {
			add("--resources: %q must be an absolute URI without a fragment", r)
		}
	}
	c.validateAppLinks(add)
	if _, bp := c.Brand(); len(bp) > 0 {
		probs = append(probs, bp...)
	}
	if c.AccessTokenTTL > accesstoken.MaxLifetime {
		add("--access-token-ttl must be at most 1h: access tokens are bearer tokens (got %s)", c.AccessTokenTTL)
	}
	return joinProblems(probs)
}

// Forms of the app link settings: Apple's app identifier prefix (team id)
// and bundle id, a Java package name, a SHA-256 fingerprint as keytool
// prints it.
var (
	iosAppIDRE    = regexp.MustCompile(`^[A-Z0-9]{10}\.[A-Za-z0-9][A-Za-z0-9.-]*$`)
	androidAppRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$`)
	sha256PrintRE = regexp.MustCompile(`^[0-9A-F]{2}(:[0-9A-F]{2}){31}$`)
)

// validateAppLinks checks the app link flags and normalises the
// fingerprints to upper case, as assetlinks.json wants them.
func (c *Config) validateAppLinks(add func(string, ...any)) {
	for _, id := range c.IOSAppIDs {
		if !iosAppIDRE.MatchString(id) {
			add("--ios-app-id %q must be TEAMID.bundle.id (a 10-character team id, e.g. A1B2C3D4E5.vn.gov.onedoor.eid)", id)
		}
	}
	if c.AndroidApp != "" && !androidAppRE.MatchString(c.AndroidApp) {
		add("--android-app %q must be a package name such as vn.gov.onedoor.eid", c.AndroidApp)
	}
	if (c.AndroidApp == "") != (len(c.AndroidCertSHA256) == 0) {
		add("--android-app and --android-cert-sha256 go together: Android verifies the app link against the app's signing certificate")
	}
	for i, f := range c.AndroidCertSHA256 {
		c.AndroidCertSHA256[i] = strings.ToUpper(f)
		if !sha256PrintRE.MatchString(c.AndroidCertSHA256[i]) {
			add("--android-cert-sha256 %q must be 32 hex bytes separated by colons (keytool -list -v prints it)", f)
		}
	}
	for _, s := range []struct{ name, v string }{{"--app-store-url", c.AppStoreURL}, {"--play-store-url", c.PlayStoreURL}} {
		if s.v == "" {
			continue
		}
		if u, err := url.Parse(s.v); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
			add("%s must be an https URL (got %q)", s.name, s.v)
		}
	}
}

// issuerPathRE is the issuer paths OneDoor mounts its routes under: plain
// segments, nothing a route pattern or a cookie path would read differently.
var issuerPathRE = regexp.MustCompile(`^(/[A-Za-z0-9._~-]+)*$`)

func joinProblems(probs []string) error {
	if len(probs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid configuration:\n  - %s", strings.Join(probs, "\n  - "))
}

// masterKeyPath is where the master key lives unless configured.
func (c *Config) masterKeyPath() string {
	if c.MasterKeyFile != "" {
		return c.MasterKeyFile
	}
	return filepath.Join(c.DataDir, "master.key")
}

// redisLoopback reports whether every node u names, a cluster's addr
// parameters included, is on this machine.
func redisLoopback(u *url.URL) bool {
	if !idp.Loopback(u.Hostname()) {
		return false
	}
	for _, a := range u.Query()["addr"] {
		if h, _, err := net.SplitHostPort(a); err != nil || !idp.Loopback(h) {
			return false
		}
	}
	return true
}

// Warnings names what is allowed but risky: connections to the shared stores
// in plain text outside this machine. Redis holds login decisions, codes and
// sessions, so whoever can write on that path can log in as anyone.
func (c *Config) Warnings() []string {
	var out []string
	if u, err := url.Parse(c.RedisURL); err == nil && u.Scheme == "redis" && !redisLoopback(u) {
		out = append(out, "--redis-url is plain redis:// to another host: use rediss:// (TLS) unless the network path is private and trusted")
	}
	if u, err := url.Parse(c.PostgresDSN); err == nil && u.Host != "" && !idp.Loopback(u.Hostname()) {
		switch u.Query().Get("sslmode") {
		case "verify-full", "verify-ca":
		default:
			out = append(out, "--postgres-dsn to another host without sslmode=verify-full: the connection can be read or altered on the way")
		}
	}
	if u, err := url.Parse(c.Issuer); err == nil && c.Issuer != "" && idp.Loopback(u.Hostname()) {
		if host, port, err := net.SplitHostPort(c.IDPAddr); err == nil && loopbackHost(host) && port != "0" && issuerPort(u) != port {
			out = append(out, fmt.Sprintf("--issuer %s names port %s but --idp-addr listens on %s: browsers and clients will not reach this server at the issuer", c.Issuer, issuerPort(u), port))
		}
	}
	if u, err := url.Parse(c.Issuer); err == nil && u.Scheme == "http" && (len(c.IOSAppIDs) > 0 || c.AndroidApp != "") {
		out = append(out, "--ios-app-id/--android-app with an http --issuer: iOS and Android fetch the association files and claim app links over https only, so the app link will always show the fallback page")
	}
	if c.PushAllowPrivate {
		out = append(out, "--push-allow-private: Web Push may reach loopback and private addresses (for the demo and tests only)")
	}
	if c.WebhookAllowPrivate {
		out = append(out, "--webhook-allow-private: agency webhooks may reach loopback and private addresses (for the demo and tests only)")
	}
	return out
}

// sqlitePath is the embedded default's database file.
func (c *Config) sqlitePath() string { return filepath.Join(c.DataDir, "onedoor.db") }

// StoreName names the durable store for people: the SQLite file's absolute
// path, or PostgreSQL's host, port and database without user or password.
func (c *Config) StoreName() string {
	if c.PostgresDSN == "" {
		return "sqlite:" + absPath(c.sqlitePath())
	}
	return postgres.Describe(c.PostgresDSN)
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// loopbackHost reports whether a listen host can only be reached from this
// machine.
func loopbackHost(host string) bool {
	return host == "localhost" || idp.Loopback(host)
}

// issuerPort is the port a URL is reached on, its scheme's default included.
func issuerPort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// defaultIssuer is the issuer of a server that was given none: the
// loopback URL of the port it listens on.
func defaultIssuer(boundAddr string) string {
	_, port, _ := net.SplitHostPort(boundAddr)
	return "http://localhost:" + port
}

func (c *Config) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}
