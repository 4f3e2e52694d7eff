package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofrs/flock"
	goredis "github.com/redis/go-redis/v9"

	"golang.org/x/mod/sumdb/note"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/consent/auditweb"
	consentsql "github.com/onedoor/onedoor/consent/sqlstore"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
	"github.com/onedoor/onedoor/idp/clientaddr"
	"github.com/onedoor/onedoor/idp/dpop"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/keyset"
	"github.com/onedoor/onedoor/idp/oidc"
	"github.com/onedoor/onedoor/idp/passkey"
	"github.com/onedoor/onedoor/idp/postgres"
	"github.com/onedoor/onedoor/idp/redis"
	"github.com/onedoor/onedoor/idp/sqlite"
	"github.com/onedoor/onedoor/idp/sqlstore"
	"github.com/onedoor/onedoor/idp/sso"
	"github.com/onedoor/onedoor/idp/web"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/mobileapi/blob/fsblob"
	"github.com/onedoor/onedoor/mobileapi/fiberapi"
	"github.com/onedoor/onedoor/mobileapi/search"
	apisql "github.com/onedoor/onedoor/mobileapi/sqlstore"
	"github.com/onedoor/onedoor/mobileapi/webhook"
	"github.com/onedoor/onedoor/push"
	pushredis "github.com/onedoor/onedoor/push/redis"
	pushsql "github.com/onedoor/onedoor/push/sqlstore"
	"github.com/onedoor/onedoor/represent"
	repsql "github.com/onedoor/onedoor/represent/sqlstore"
)

// Main is the composition root: it opens storage, builds every service and
// serves them.
type Main struct {
	Config Config
	Logger *slog.Logger
	Now    func() time.Time

	DB    *sql.DB
	Store *sqlstore.Store
	// APIStore is the mobile API's store, on the same database.
	APIStore *apisql.Store
	// ConsentStore keeps consent records, legal bases, receipts and the
	// access log, on the same database; Consent is the one path by which
	// personal data is released (the IdP's ID tokens and userinfo go
	// through it).
	ConsentStore *consentsql.Store
	Consent      *consent.Service
	// Checkpointer commits the access log's chain heads to signed
	// checkpoints (every --audit-checkpoint-interval while serving).
	Checkpointer *consent.Checkpointer
	// Cosigner sends each checkpoint to the --audit-witness witnesses and
	// stores their cosignatures.
	Cosigner *consent.Cosigner
	// RepStore keeps the business registry and the mandates, on the same
	// database; Represent derives whom a citizen may act for from it and
	// the citizen registry's guardianships, and denies the tokens of a
	// representation that ends early.
	RepStore  *repsql.Store
	Represent *represent.Service

	Eph      idp.Ephemeral
	DPoP     *dpop.Verifier
	Keys     *keyset.Manager
	EID      *eid.Service
	Provider *oidc.Provider
	Web      *web.Server
	// idpMetrics counts what operators watch in the IdP (web.Observer).
	idpMetrics *idpMetrics
	// Issuer is the issuer actually served (derived from the listener when
	// Config.Issuer is empty, as in tests on :0).
	Issuer string
	// IDPAddr is the bound address of the identity provider.
	IDPAddr string
	// API is the mobile API; APIAddr its bound address and APIURL its
	// audience (derived from the listener when Config.APIURL is empty).
	API     *fiberapi.Server
	Blobs   *fsblob.Store
	Catalog *search.Cache
	// Webhooks delivers agency events to their endpoints.
	Webhooks *webhook.Worker
	// Sessions ends single sign-on sessions; Deliveries works the IdP's
	// durable delivery queue (idp_deliveries): back-channel logouts of
	// ended sessions and CIBA pings (sessions.go).
	Sessions   *sso.Service
	Deliveries *sso.Worker
	// PushStore holds installations, preferences and the outbox; the
	// Dispatcher sends it through Providers and tells Hub's live streams.
	PushStore  *pushsql.Store
	Providers  map[push.Platform]push.Provider
	Hub        push.Hub
	Dispatcher *push.Dispatcher
	// MetricsAddr is the bound address of /metrics, when served.
	MetricsAddr string
	APIAddr     string
	APIURL      string
	apiLn       net.Listener
	// Agencies are the mobile API's agencies, which `client create
	// --agency` checks.
	Agencies AgencyLookup

	master []byte
	// dataLock is the embedded default's serve lock (datalock.go).
	dataLock *flock.Flock
	redis    goredis.UniversalClient
	// storeID names the Redis store in the session index (storeid.go).
	storeID string
	// wakeHub carries login wake-ups across replicas (with Redis).
	wakeHub *pushredis.Hub
	// loginPushes is the dispatcher that login prompts wake, once push
	// runs (the IdP serves before it starts).
	loginPushes atomic.Pointer[push.Dispatcher]
	servers     []*http.Server
	ready       atomic.Bool
	// webhookWorker is Webhooks once it runs, for the consent store to
	// wake after a withdrawal queued deliveries (set after serving starts).
	webhookWorker atomic.Pointer[webhook.Worker]
	// existingOnly: refuse to create the database (admin commands other
	// than migrate).
	existingOnly bool
	cancel       context.CancelFunc
	wg           sync.WaitGroup
}

// NewMain returns a Main with the default configuration.
func NewMain() *Main {
	return &Main{Config: DefaultConfig(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now}
}

// Secret-derivation purposes (HKDF info strings).
// dpopHorizonKey is where the embedded default keeps its DPoP promise
// (dpop.Horizon) in the ephemeral store.
const dpopHorizonKey = "dpop:horizon"

const (
	purposeFosite     = "fosite-global"
	purposeClient     = "client-secret"
	purposeActivation = "activation-code"
	purposeKeys       = "key-encryption"
	purposeCookie     = "cookie"
	// purposeDPoP keys the DPoP server nonces: every replica accepts the
	// nonces any other handed out.
	purposeDPoP = "dpop-nonce"
	// purposeAudit seeds the Ed25519 key that signs the access log's
	// checkpoints: every replica derives the same key, and none is stored.
	purposeAudit = "onedoor audit checkpoint v1"
)

// OpenStorage opens the durable store (SQLite or PostgreSQL), runs the
// migrations and loads the master key. Admin commands need only this.
func (m *Main) OpenStorage(ctx context.Context) error {
	c := &m.Config
	var err error
	if c.PostgresDSN == "" {
		if m.existingOnly {
			if _, err := os.Stat(c.sqlitePath()); err != nil {
				return fmt.Errorf("no OneDoor database at %s: point --data-dir (or %s) at the server's data directory, or create one with `onedoor migrate`", absPath(c.sqlitePath()), EnvName("data-dir"))
			}
		}
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
	}
	// The key comes first, so a missing key fails before any connection.
	// Replicas on PostgreSQL must share one master key, so only the embedded
	// default may create one, with or without --demo.
	if m.master, err = keyset.LoadMasterKey(c.masterKeyPath(), c.PostgresDSN == "" && !m.existingOnly); err != nil {
		if c.PostgresDSN != "" {
			return fmt.Errorf("%w (with PostgreSQL every replica needs the same key, and OneDoor never creates one, not even with --demo: set %s or --master-key-file)", err, keyset.MasterKeyEnv)
		}
		return err // it names the master key
	}
	if c.PostgresDSN != "" {
		if m.DB, err = postgres.Open(ctx, c.PostgresDSN); err != nil {
			return err // it names PostgreSQL
		}
		m.Store = postgres.New(m.DB, sqlstore.WithNow(m.Now))
		if m.existingOnly {
			var n int
			if err := m.DB.QueryRowContext(ctx, `SELECT COUNT(*) FROM idp_schema_migrations`).Scan(&n); err != nil || n == 0 {
				return fmt.Errorf("no OneDoor schema in %s: check --postgres-dsn (or %s), or create it with `onedoor migrate`", c.StoreName(), EnvName("postgres-dsn"))
			}
		}
	} else {
		if m.DB, err = sqlite.Open(c.sqlitePath()); err != nil {
			return fmt.Errorf("open sqlite: %w", err)
		}
		m.Store = sqlite.New(m.DB, sqlstore.WithNow(m.Now))
	}
	// serve and migrate apply migrations; other admin commands only check,
	// so a newer binary on an operator's machine never upgrades a database
	// under running replicas.
	schema := func(migrate, check func(context.Context) error) error {
		if m.existingOnly {
			return check(ctx)
		}
		if err := migrate(ctx); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		return nil
	}
	if err := schema(m.Store.Migrate, m.Store.CheckSchema); err != nil {
		return err
	}
	dialect := sqldb.SQLite
	if c.PostgresDSN != "" {
		dialect = sqldb.PostgreSQL
	}
	m.PushStore = pushsql.New(m.DB, dialect, pushsql.WithNow(m.Now))
	if err := schema(m.PushStore.Migrate, m.PushStore.CheckSchema); err != nil {
		return err
	}
	// A transition's inbox message and its push commit together, and so do
	// an event and its webhook deliveries (push's job queue).
	m.APIStore = apisql.New(m.DB, dialect, apisql.WithNow(m.Now), apisql.WithOutbox(m.PushStore), apisql.WithJobs(m.PushStore))
	if err := schema(m.APIStore.Migrate, m.APIStore.CheckSchema); err != nil {
		return err
	}
	// A withdrawal and its consent.withdrawn webhook deliveries commit together.
	m.ConsentStore = consentsql.New(m.DB, dialect, consentsql.WithNow(m.Now),
		consentsql.WithWithdrawHook(m.consentWithdrawn, m.wakeWebhooks))
	if err := schema(m.ConsentStore.Migrate, m.ConsentStore.CheckSchema); err != nil {
		return err
	}
	m.RepStore = repsql.New(m.DB, dialect, repsql.WithNow(m.Now))
	if err := schema(m.RepStore.Migrate, m.RepStore.CheckSchema); err != nil {
		return err
	}
	// A representation that ends before its time (a mandate revoked, a
	// legal representative replaced, a guardianship ended) denies the
	// tokens carrying its keys on every replica, as a withdrawal does.
	m.Represent = &represent.Service{
		Store:    m.RepStore,
		Registry: idp.RepresentRegistry{Citizens: m.Store},
		Deny: func(ctx context.Context, keys ...string) error {
			return accesstoken.DenyKeys(ctx, m.Store, m.Now(), keys...)
		},
		Now: m.Now,
	}
	auditSigner, auditVerifier, err := m.AuditKeys()
	if err != nil {
		return err
	}
	m.Checkpointer = &consent.Checkpointer{Store: m.ConsentStore, Signer: auditSigner, Verifier: auditVerifier, Now: m.Now}
	witnesses, err := c.Witnesses()
	if err != nil {
		return err
	}
	m.Cosigner = &consent.Cosigner{Store: m.ConsentStore, Witnesses: witnesses, Now: m.Now, OnRecover: func(w *consent.Witness, failures int) {
		m.Logger.Info("audit witness recovered", "witness", w.Name, "failures", failures)
	}}
	sealer, err := keyset.NewSealer(keyset.DeriveKey(m.master, purposeKeys))
	if err != nil {
		return err
	}
	m.Keys = keyset.New(m.Store, sealer, keyset.Options{Now: m.Now})
	if m.existingOnly {
		// An admin command with another master key than the server's would
		// store secrets and checkpoints nobody can use or verify: the key
		// must open the signing keys already there.
		if _, err := m.Keys.SigningKey(ctx, "ES256"); err != nil && !errors.Is(err, idp.ErrNotFound) {
			return fmt.Errorf("the master key (%s or %s) does not open this database's signing keys: use the key the server runs with: %w",
				c.masterKeyPath(), keyset.MasterKeyEnv, err)
		}
	}
	// Admin commands use the eID service for activations only; Run rebuilds
	// it with the served issuer and the configured ephemeral store.
	iss := m.Config.Issuer
	if iss == "" {
		iss = "http://localhost"
	}
	m.EID = eid.New(m.Store, m.Store, eid.Config{Issuer: iss, CodeKey: keyset.DeriveKey(m.master, purposeActivation), Now: m.Now})
	m.Agencies = m.APIStore
	// Admin commands end sessions in the database's ephemeral table unless
	// they open Redis as the server does (citizen lock: useRedis).
	m.Sessions = sso.New(m.Store, m.Store, m.Now)
	m.Sessions.SetEphemeral("database")
	// Receipts are signed with the platform key the JWKS publishes; a
	// withdrawal denies the consent's access tokens on every replica
	// (each verifier rereads the deny list within a second).
	m.Consent = &consent.Service{
		Store:  m.ConsentStore,
		Signer: keyset.JWSSigner{Keys: m.Keys},
		Issuer: iss,
		Deny: func(ctx context.Context, consentID string) error {
			return accesstoken.DenyConsent(ctx, m.Store, consentID, m.Now())
		},
		Now:        m.Now,
		ActorNames: m.actorNames,
	}
	return nil
}

// actorNames is how a recipient is named at the moment of a release: the
// access-log entry keeps these, so renaming a client or an agency later
// does not change what the citizen was shown. A client or agency deleted
// since is left unnamed (the log shows its id).
func (m *Main) actorNames(ctx context.Context, a consent.Actor) (*consent.Names, error) {
	n := &consent.Names{}
	if a.ClientID != "" && a.ClientID != idp.EIDAppClientID {
		c, err := m.Store.GetClient(ctx, a.ClientID)
		switch {
		case err == nil:
			n.Client = c.Name
		case !errors.Is(err, idp.ErrNotFound) || errors.Is(err, idp.ErrUnavailable):
			return nil, err
		}
	}
	if a.Agency != "" {
		ag, err := m.Agencies.GetAgency(ctx, a.Agency)
		switch {
		case err == nil:
			n.AgencyVI, n.AgencyEN = ag.Name.VI, ag.Name.EN
		case !errors.Is(err, idp.ErrNotFound) || errors.Is(err, idp.ErrUnavailable):
			return nil, err
		}
	}
	return n, nil
}

// openEphemeral opens the ephemeral store: Redis when configured (and
// reachable: Dial pings it), otherwise the durable database's own table.
func (m *Main) openEphemeral(ctx context.Context) error {
	m.Eph = m.Store
	if m.Config.RedisURL != "" {
		dial := redis.Dial
		if m.Config.RedisCluster {
			dial = redis.DialCluster
		}
		rdb, err := dial(ctx, m.Config.RedisURL)
		if err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		m.redis = rdb
		m.Eph = redis.New(rdb, m.Config.RedisPrefix)
	}
	return nil
}

// ephemeralName names the ephemeral store in the session index
// (sso.Service.SetEphemeral), so that a process reaching another store
// refuses to end sessions it cannot. Redis is named by the store id it
// holds (claimStoreID, readStoreID), not by its URL or prefix.
func (m *Main) ephemeralName() string {
	if m.redis != nil {
		return "redis:" + m.storeID
	}
	return "database"
}

// AuditKeys are the signer and verifier of the access log's checkpoints,
// derived from the master key.
func (m *Main) AuditKeys() (note.Signer, note.Verifier, error) {
	s, v, err := consent.CheckpointKeys(keyset.DeriveKey(m.master, purposeAudit))
	if err != nil {
		return nil, nil, fmt.Errorf("audit checkpoint key: %w", err)
	}
	return s, v, nil
}

// AuditVerifierKey is the checkpoints' public key, to give to whoever
// keeps copies of them.
func (m *Main) AuditVerifierKey() (string, error) {
	return consent.CheckpointVerifierKey(keyset.DeriveKey(m.master, purposeAudit))
}

// ClientSecretKey keys the stored hash of client secrets.
func (m *Main) ClientSecretKey() []byte { return keyset.DeriveKey(m.master, purposeClient) }

// Run opens everything, starts serving and returns; Close stops.
func (m *Main) Run(ctx context.Context) error {
	c := &m.Config
	if c.PostgresDSN == "" {
		if err := m.lockDataDir(); err != nil {
			return err
		}
	}
	if err := m.OpenStorage(ctx); err != nil {
		return err
	}
	if err := m.openEphemeral(ctx); err != nil {
		return err
	}
	if m.redis != nil {
		if err := m.claimStoreID(ctx); err != nil {
			return err
		}
	}
	// One logged refusal per agency, citizen and purpose per window, across
	// replicas.
	m.Consent.Once = func(ctx context.Context, key string, ttl time.Duration) (bool, error) {
		err := m.Eph.Create(ctx, key, []byte{1}, ttl)
		if errors.Is(err, idp.ErrConflict) {
			return false, nil
		}
		return err == nil, err
	}
	m.Consent.Logger = m.Logger
	if err := m.Keys.Ensure(ctx); err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	ln, err := net.Listen("tcp", c.IDPAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", c.IDPAddr, err)
	}
	m.IDPAddr = ln.Addr().String()
	var apiLn net.Listener
	if c.APIAddr != "" {
		if apiLn, err = net.Listen("tcp", c.APIAddr); err != nil {
			_ = ln.Close()
			return fmt.Errorf("listen %s: %w", c.APIAddr, err)
		}
		m.apiLn = apiLn
		m.APIAddr = apiLn.Addr().String()
		m.APIURL = strings.TrimRight(c.APIURL, "/")
		if m.APIURL == "" {
			_, port, _ := net.SplitHostPort(m.APIAddr)
			m.APIURL = "http://localhost:" + port
		}
	}
	m.Issuer = c.Issuer
	if m.Issuer == "" {
		m.Issuer = defaultIssuer(m.IDPAddr)
	}
	m.Consent.Issuer = m.Issuer
	// The grants the IdP kept before consent records become consent
	// records, once (idp_grants is emptied as they move; see migration
	// 0010). Their receipts need the signing key and the served issuer.
	if n, err := idp.MoveGrants(ctx, m.Store, m.Store, m.Consent); err != nil {
		return fmt.Errorf("move grants into consent records: %w", err)
	} else if n > 0 {
		m.Logger.Info("grants moved into consent records", "count", n)
	}
	codeKey := keyset.DeriveKey(m.master, purposeActivation)
	brand, bp := c.Brand()
	if len(bp) > 0 {
		return joinProblems(bp)
	}
	wakeups, err := m.startWakeups(ctx)
	if err != nil {
		return err
	}
	m.EID = eid.New(m.Store, m.Eph, eid.Config{Issuer: m.Issuer, CodeKey: codeKey, Now: m.Now, LoginTTL: c.LoginTTL, Wakeups: wakeups,
		// A revoked device's push installations go with it: a stolen phone
		// gets no more notifications.
		OnRevoke: func(ctx context.Context, deviceID string) error {
			_, err := m.PushStore.DeleteDeviceInstallations(ctx, deviceID)
			if err == nil {
				err = m.endDeviceSessions(ctx, deviceID)
			}
			return err
		}})
	m.Provider = oidc.New(oidc.Config{
		Issuer:       m.Issuer,
		GlobalSecret: keyset.DeriveKey(m.master, purposeFosite),
		SecretKey:    m.ClientSecretKey(),
		Lifespans: oidc.Lifespans{
			AuthorizeCode: time.Minute,
			AccessToken:   c.AccessTokenTTL,
			RefreshToken:  c.RefreshTokenTTL,
			PAR:           c.PARLifetime,
			RefreshGrace:  c.RefreshGrace,
		},
		Resources: m.resources(),
		// An agency's own token (scope agency) is for the mobile API
		// unless it names another resource.
		AgencyAudience: m.APIURL,
		Now:            m.Now,
		DeviceGrant:    m.EID,
	}, m.Store, m.Eph, m.Keys)
	proxies, err := clientaddr.ParsePrefixes(c.TrustedProxies)
	if err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	// Passkeys: the relying party is the issuer's host (RP ID) and origin.
	// WebAuthn needs a domain: an issuer at an IP address has none.
	var passkeys *passkey.RP
	if iu, _ := url.Parse(m.Issuer); iu != nil && net.ParseIP(iu.Hostname()) != nil {
		m.Logger.Warn("passkeys are off: the issuer's host is an IP address, and WebAuthn needs a domain", "issuer", m.Issuer)
	} else if passkeys, err = passkey.New(passkey.Config{Issuer: m.Issuer, DisplayName: brand.Name, Store: m.Store, Ephemeral: m.Eph, Now: m.Now}); err != nil {
		return err
	}
	m.newSessions()
	// One DPoP verifier for the IdP and the mobile API: jtis are spent in
	// the shared ephemeral store, nonces keyed from the master key; the
	// embedded default's one process keeps them in memory instead.
	dpopCfg := dpop.Config{NonceKey: keyset.DeriveKey(m.master, purposeDPoP), Now: m.Now}
	if c.inProcess() {
		if m.DPoP, err = dpop.NewInProcess(ctx, dpopCfg, dpop.EphemeralHorizon{Store: m.Eph, Key: dpopHorizonKey}); err != nil {
			return err
		}
	} else {
		m.DPoP = dpop.New(dpopCfg, m.Eph)
	}
	m.idpMetrics = newIDPMetrics()
	m.Web = web.New(web.Config{
		Observer: m.idpMetrics,
		// CIBA pings ride on the durable delivery queue beside the
		// back-channel logouts; this replica's worker is woken when one is due.
		Pings:        m.Store,
		OnPingQueued: m.Deliveries.Notify,
		DPoP:         m.DPoP,
		DPoPNonce:    c.DPoPNonce,
		Passkeys:     passkeys,
		PasskeyStore: m.Store,
		// What a removed passkey yielded goes with it, as a device's does.
		OnPasskeyRemoved: m.passkeyRemoved,
		Sessions:         m.Sessions,
		TrustedProxies:   proxies,
		Limits:           c.Limits,
		Issuer:           m.Issuer,
		CookieKey:        keyset.DeriveKey(m.master, purposeCookie),
		SessionTTL:       c.SessionTTL,
		LoginLimit:       c.LoginRateLimit,
		RequestTimeout:   c.RequestTimeout,
		// What each client is shown and receives: its registration and the
		// citizens' consent records.
		Consent: m.Consent,
		Release: &idp.ConsentPolicy{Clients: m.Provider.Clients(), Consent: m.Consent},
		AppLinks: web.AppLinks{IOSAppIDs: c.IOSAppIDs, AndroidPackage: c.AndroidApp, AndroidCertSHA256: c.AndroidCertSHA256,
			AppStoreURL: c.AppStoreURL, PlayStoreURL: c.PlayStoreURL},
		Brand:           brand,
		RefreshTokenTTL: c.RefreshTokenTTL,
		Prompter:        pushPrompter{m: m},
		// Agencies register clients with an operator's initial access
		// token (`onedoor agency token`); they stay pending until approved.
		Registration: &web.Registration{Store: m.Store, SecretKey: m.ClientSecretKey()},
		// Whom a citizen may act for: scope representation (idp/web/represent.go).
		Represent: m.Represent,
		Now:       m.Now,
		Logger:    m.Logger,
	}, m.Provider, m.Store, m.Eph, m.EID, m.Keys)
	m.Web.SetReady(m.ready.Load)
	m.ready.Store(true)

	ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	m.serve(ln, m.idpHandler(m.Web.Handler()))
	if apiLn != nil {
		if m.Blobs, err = fsblob.New(c.blobDir()); err != nil {
			return err
		}
		m.Catalog = search.NewCache(m.APIStore)
		m.Webhooks = &webhook.Worker{Store: m.APIStore, Signer: webhook.KeySigner{Keys: m.Keys}, AllowPrivate: c.WebhookAllowPrivate,
			Now: m.Now, Logger: m.Logger}
		if c.WebhookBackoff > 0 {
			m.Webhooks.Backoff = webhook.FullJitter(c.WebhookBackoff, webhook.BackoffCap)
		}
		m.webhookWorker.Store(m.Webhooks)
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := m.Webhooks.Run(ctx); err != nil {
				m.Logger.Error("webhook worker stopped", "err", err)
			}
		}()
		pushCfg, err := m.startPush(ctx)
		if err != nil {
			return err
		}
		m.API = fiberapi.New(fiberapi.Config{
			// Signatures are checked once per token; the deny list at most
			// a second apart, so a revocation still lands within a second.
			APIURL: m.APIURL, Verifier: accesstoken.NewCache(m.Provider.Verifier, time.Second, 100_000), Citizens: m.Store, Clients: m.Provider.Clients(),
			Store: m.APIStore, Blobs: m.Blobs, Catalog: m.Catalog, Ephemeral: m.Eph, SharedLimits: c.RedisURL != "",
			// Every release of personal data through the API goes through
			// the consent service, reading the citizen store in place.
			Consent: m.Consent, Registry: idp.Registry{Citizens: m.Store}, Represent: m.Represent, Audit: m.ConsentStore, AuditWitnesses: m.Cosigner.Witnesses, AuditQuorum: m.Config.WitnessQuorum(),
			CitizenRateLimit: c.APICitizenRateLimit, AgencyRateLimit: c.APIAgencyRateLimit, DataRequestRateLimit: c.APIDataRequestRateLimit,
			AuthFailureLimit: c.APIAuthFailureLimit, AuthFailureAddrs: c.APIAuthFailureAddrs, TrustedProxies: proxies, OutageLogEvery: c.APIOutageLogEvery,
			// DPoP proofs are checked by the IdP's verifier: one replay
			// cache, and htu built from --api-url. The eID app's tokens
			// work on citizen routes only with a proof.
			DPoP:   m.DPoP,
			Push:   pushCfg,
			Notify: func() { m.Webhooks.Notify(); m.Dispatcher.Notify() }, Ready: m.readyErr, RequestTimeout: c.RequestTimeout, Now: m.Now, Logger: m.Logger,
		})
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := m.API.Serve(apiLn); err != nil && m.ready.Load() {
				m.Logger.Error("mobile API stopped", "addr", m.APIAddr, "err", err)
			}
		}()
		m.Logger.Info("mobile API listening", "addr", m.APIAddr, "audience", m.APIURL)
		every := c.BlobSweepEvery
		if every <= 0 {
			every = defaultBlobSweepEvery
		}
		m.wg.Add(1)
		go m.sweepLoop(ctx, every)
	}
	m.wg.Add(1)
	go m.collectGarbage(ctx)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.DPoP.Run(ctx, func(err error) { m.Logger.Warn("dpop", "err", err) })
	}()
	if m.redis != nil {
		m.wg.Add(1)
		go m.keepStoreID(ctx)
	}
	m.wg.Add(1)
	go m.runDeliveries(ctx)
	m.wg.Add(1)
	go m.checkpointAudit(ctx)
	if len(m.Cosigner.Witnesses) > 0 {
		m.wg.Add(1)
		go m.cosignAudit(ctx)
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.Provider.WatchClients(ctx, func(err error) { m.Logger.Warn("client cache poll", "err", err) })
	}()
	for _, w := range c.Warnings() {
		m.Logger.Warn("configuration", "warning", w)
	}
	m.Logger.Info("identity provider listening", "addr", m.IDPAddr, "issuer", m.Issuer, "store", c.StoreName())
	return nil
}

// serve starts an HTTP server on ln with timeouts that bound slow clients.
func (m *Main) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
	m.servers = append(m.servers, srv)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
}

// collectGarbage removes expired ephemeral entries and refresh tokens.
func (m *Main) collectGarbage(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := m.Store.GarbageCollect(ctx, m.Now()); err != nil && ctx.Err() == nil {
				m.Logger.Warn("garbage collection", "err", err)
			}
		}
	}
}

// checkpointAudit commits the access log's moved chain heads to a signed
// checkpoint every interval (one checkpoint a tick, logged). Replicas
// take turns on the store's lock.
// Nothing is committed on the way out, so a stop never waits on the
// database: the heads stay in the store and the next checkpoint, on any
// replica or after a restart, commits them.
func (m *Main) checkpointAudit(ctx context.Context) {
	defer m.wg.Done()
	m.Checkpointer.Run(ctx, m.Config.AuditCheckpointInterval, func(cp *consent.Checkpoint, heads int) {
		m.Logger.Info("audit checkpoint", "size", cp.Size, "heads", heads)
		m.Cosigner.Nudge()
	}, func(err error) {
		m.Logger.Warn("audit checkpoint", "err", err)
	})
}

// cosignAudit sends each new checkpoint to the witnesses, and retries
// those that failed (each in its own backoff).
func (m *Main) cosignAudit(ctx context.Context) {
	defer m.wg.Done()
	m.Cosigner.Run(ctx, min(m.Config.AuditCheckpointInterval, 10*time.Second), func(err error) {
		m.Logger.Warn("audit cosignature", "err", err)
	})
}

// idpHandler is the IdP's handler with the access log's public routes
// (/audit/v1/…) beside it.
func (m *Main) idpHandler(web http.Handler) http.Handler {
	vkey, err := m.AuditVerifierKey()
	if err != nil {
		vkey = "" // the key was derived at startup: cannot fail here
	}
	// Under the issuer's base path, with the IdP's middleware (request id,
	// log, panic recovery, security headers).
	var (
		base  string
		audit = http.NewServeMux()
		wrap  = func(h http.Handler) http.Handler { return h }
	)
	if m.Web != nil {
		base, wrap = m.Web.BasePath(), m.Web.Wrap
	}
	(&auditweb.Handler{Store: m.ConsentStore, LogKey: vkey, Witnesses: m.Cosigner.Witnesses, Quorum: m.Config.WitnessQuorum(),
		Timeout: m.Config.RequestTimeout, Prefix: base}).Mount(audit)
	mux := http.NewServeMux()
	mux.Handle(base+"/audit/v1/", wrap(audit))
	mux.Handle("/", web)
	return mux
}

// Close drops readiness, lets in-flight requests finish within the grace
// period, then closes the stores.
func (m *Main) Close() error {
	if m.ready.Swap(false) && m.Config.ShutdownDelay > 0 {
		// Readiness is down; give load balancers time to notice before the
		// listener closes.
		time.Sleep(m.Config.ShutdownDelay)
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownGrace)
	defer cancel()
	var errs []error
	if m.Web != nil {
		// Held login status requests answer now, not after up to 25 s.
		m.Web.StopWaiting()
	}
	for _, s := range m.servers {
		if err := s.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if m.API != nil {
		if err := m.API.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
		// fasthttp's shutdown does nothing to a listener it has not started
		// serving yet (a Close right after Run): closing it ends Serve.
		_ = m.apiLn.Close()
	}
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	if m.Consent != nil {
		m.Consent.Drain() // refusals still being logged
	}
	if m.wakeHub != nil {
		errs = append(errs, m.wakeHub.Close())
	}
	if m.redis != nil {
		errs = append(errs, m.redis.Close())
	}
	if m.DB != nil {
		errs = append(errs, m.DB.Close())
	}
	if m.dataLock != nil {
		errs = append(errs, m.dataLock.Unlock())
	}
	return errors.Join(errs...)
}

// serve is the serve command.
func serve(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	m := NewMain()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	m.Config.serveFlags(fs)
	if err := parseFlags(fs, args, env); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return usageError("unexpected arguments: %v", fs.Args())
	}
	if err := m.Config.Validate(true); err != nil {
		return err
	}
	m.Logger = m.Config.logger(stderr)
	if err := m.Run(ctx); err != nil {
		_ = m.Close()
		return err
	}
	if m.Config.Demo {
		if err := m.startDemo(ctx, stdout); err != nil {
			_ = m.Close()
			return err
		}
	} else {
		if m.holdsDemoData(ctx) {
			m.Logger.Warn("this database holds DEMO data (fake citizens and clients from an earlier --demo run): do not serve real citizens from it", "store", m.Config.StoreName())
		}
		fmt.Fprintf(stdout, "OneDoor identity provider: %s (discovery: %s%s; store: %s)\n", m.Issuer, m.Issuer, web.PathDiscovery, m.Config.StoreName())
	}
	<-ctx.Done()
	m.Logger.Info("shutting down")
	return m.Close()
}

// readyErr is the mobile API's readiness: the process is not shutting down
// and both stores answer.
func (m *Main) readyErr(ctx context.Context) error {
	if !m.ready.Load() {
		return errors.New("shutting down")
	}
	if err := m.Store.Ping(ctx); err != nil {
		return err
	}
	return m.Eph.Ping(ctx)
}

// resources are the resource servers tokens may be minted for: the mobile
// API (as served) and those of --resources.
func (m *Main) resources() []string {
	out := slices.Clone(m.Config.Resources)
	if m.APIURL != "" && !slices.Contains(out, m.APIURL) {
		out = append(out, m.APIURL)
	}
	return out
}
