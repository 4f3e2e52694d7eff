package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/keyset"
	"github.com/onedoor/onedoor/mobileapi/fiberapi"
	"github.com/onedoor/onedoor/mobileapi/province"
	"github.com/onedoor/onedoor/mobileapi/webhook"
	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/apns"
	"github.com/onedoor/onedoor/push/fcm"
	"github.com/onedoor/onedoor/push/queue"
	pushredis "github.com/onedoor/onedoor/push/redis"
	"github.com/onedoor/onedoor/push/webpush"
)

// PushConfig configures the push providers.
type PushConfig struct {
	// FCMCredentials is the service-account JSON file of the Firebase
	// project; FCMEndpoint overrides https://fcm.googleapis.com.
	FCMCredentials, FCMEndpoint string
	// APNsKey is the .p8 token-signing key file; APNsKeyID, APNsTeamID
	// and APNsTopic (the app's bundle id) go with it.
	APNsKey, APNsKeyID, APNsTeamID, APNsTopic, APNsEndpoint string
	// APNsHTTPClient overrides the APNs client (no flag: tests trust a
	// local APNs server's certificate with it).
	APNsHTTPClient *http.Client
	// VAPIDPrivateKey is the Web Push signing key file; without it the key
	// is derived from the master key, the same on every replica.
	VAPIDPrivateKey string
	// VAPIDSubject is the contact push services see (mailto: or https:).
	VAPIDSubject string
	// WebPushHosts are the browser push services subscriptions may point
	// at (default push.DefaultWebPushHosts).
	WebPushHosts []string
	// WebPushHTTPClient overrides the Web Push client (no flag: tests
	// trust a local push service's certificate with it; it bypasses the
	// guard against private addresses).
	WebPushHTTPClient *http.Client
	// PushAllowPrivate lets Web Push reach loopback and private
	// endpoints: for the demo and tests only (the endpoints come from
	// citizens: SSRF).
	PushAllowPrivate bool
	// PushBackoff is the first retry's upper bound and PushPoll the idle
	// dispatcher's poll (no flags: tests shorten them).
	PushBackoff, PushPoll time.Duration
	// PushHeartbeat is how often an idle live stream gets a comment line
	// and its token is checked again (no flag: tests shorten it; 0 is
	// fiberapi's default).
	PushHeartbeat time.Duration
	// PushLease is how long a dispatcher's claim hides a batch from the
	// other replicas' dispatchers: after a crash, its messages go out again
	// once it passes. 0 means the dispatcher's default (over a minute).
	PushLease time.Duration
	// PushRetention is how long final messages stay for receipts and the
	// live stream's catch-up.
	PushRetention time.Duration
	// MetricsAddr is where /metrics is served (Prometheus); empty: not
	// served. It is for the operators' network: bind it to an internal
	// address.
	MetricsAddr string
}

func (c *PushConfig) pushFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.FCMCredentials, "fcm-credentials", c.FCMCredentials, "Firebase service-account JSON file: pushes to Android (and iOS through FCM) go out by FCM HTTP v1")
	fs.StringVar(&c.FCMEndpoint, "fcm-endpoint", c.FCMEndpoint, "FCM API base URL (default https://fcm.googleapis.com)")
	fs.StringVar(&c.APNsKey, "apns-key", c.APNsKey, "APNs token-signing key (.p8) file: pushes to iOS go out by APNs")
	fs.StringVar(&c.APNsKeyID, "apns-key-id", c.APNsKeyID, "the APNs key's id")
	fs.StringVar(&c.APNsTeamID, "apns-team-id", c.APNsTeamID, "the Apple developer team id")
	fs.StringVar(&c.APNsTopic, "apns-topic", c.APNsTopic, "the iOS app's bundle id")
	fs.StringVar(&c.APNsEndpoint, "apns-endpoint", c.APNsEndpoint, "APNs base URL (default https://api.push.apple.com; https://api.sandbox.push.apple.com for development builds)")
	fs.StringVar(&c.VAPIDPrivateKey, "vapid-private-key", c.VAPIDPrivateKey, "Web Push (VAPID) P-256 key file, PEM or base64url; default: derived from the master key")
	fs.StringVar(&c.VAPIDSubject, "vapid-subject", c.VAPIDSubject, "contact push services see in VAPID tokens, mailto: or https: (default mailto:push@ the issuer's host)")
	fs.Var(&commaList{v: &c.WebPushHosts}, "webpush-hosts", "comma-separated browser push services (hosts and their subdomains) Web Push subscriptions may point at (default "+strings.Join(push.DefaultWebPushHosts, ",")+")")
	fs.BoolVar(&c.PushAllowPrivate, "push-allow-private", c.PushAllowPrivate, "let Web Push reach loopback and private endpoints (demo and tests only: endpoints come from citizens)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "listen address of Prometheus /metrics (push queue depth, sends, provider errors and latency); empty: off. Bind it to an internal address")
	fs.DurationVar(&c.PushLease, "push-lease", c.PushLease, "how long a claimed batch of notifications is hidden from other replicas; a crashed replica's batch is sent again once it passes (default: a minute beyond a full batch's send timeout; shorter than a batch takes to send causes duplicates)")
	fs.DurationVar(&c.PushRetention, "push-retention", c.PushRetention, "how long delivered and dead notifications (and their push jobs) are kept for receipts and the live stream's catch-up; webhook delivery logs are not swept")
}

// purposeVAPID derives the default Web Push key.
const purposeVAPID = "onedoor vapid v1"

// vapidKey reads --vapid-private-key, or derives the key from the master
// key so every replica signs with the same one and subscriptions outlive
// restarts.
func (m *Main) vapidKey() (*ecdsa.PrivateKey, error) {
	if f := m.Config.VAPIDPrivateKey; f != "" {
		b, err := os.ReadFile(f) //nolint:gosec // an operator's path
		if err != nil {
			return nil, fmt.Errorf("--vapid-private-key: %w", err)
		}
		k, err := webpush.ParseKey(b)
		if err != nil {
			return nil, fmt.Errorf("--vapid-private-key %s: %w", f, err)
		}
		return k, nil
	}
	seed := keyset.DeriveKey(m.master, purposeVAPID)
	for i := uint32(0); ; i++ {
		// A scalar at or above the group order (odds 2^-32) is skipped.
		h := sha256.New()
		h.Write(seed)
		_ = binary.Write(h, binary.BigEndian, i)
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), h.Sum(nil)); err == nil {
			return k, nil
		}
	}
}

// startPush builds the providers, the live hub and the dispatcher, and
// returns what the mobile API serves push with.
func (m *Main) startPush(ctx context.Context) (*fiberapi.PushConfig, error) {
	c := &m.Config
	providers := map[push.Platform]push.Provider{}
	if c.FCMCredentials != "" {
		b, err := os.ReadFile(c.FCMCredentials)
		if err != nil {
			return nil, fmt.Errorf("--fcm-credentials: %w", err)
		}
		p, err := fcm.New(fcm.Config{Credentials: b, Endpoint: c.FCMEndpoint})
		if err != nil {
			return nil, fmt.Errorf("--fcm-credentials: %w", err)
		}
		providers[push.FCM] = p
	}
	if c.APNsKey != "" {
		b, err := os.ReadFile(c.APNsKey)
		if err != nil {
			return nil, fmt.Errorf("--apns-key: %w", err)
		}
		p, err := apns.New(apns.Config{Key: b, KeyID: c.APNsKeyID, TeamID: c.APNsTeamID, Topic: c.APNsTopic,
			Endpoint: c.APNsEndpoint, HTTPClient: c.APNsHTTPClient})
		if err != nil {
			return nil, fmt.Errorf("apns: %w", err)
		}
		providers[push.APNs] = p
	}
	if c.Demo {
		// Without credentials the demo's app pushes go to a sink that logs
		// them: a newcomer sees them without a Firebase project.
		for _, p := range []push.Platform{push.FCM, push.APNs} {
			if providers[p] == nil {
				providers[p] = &push.Sink{For: p, Logger: m.Logger}
			}
		}
	}
	key, err := m.vapidKey()
	if err != nil {
		return nil, err
	}
	subject := c.VAPIDSubject
	if subject == "" {
		host := "localhost"
		if u, err := url.Parse(m.Issuer); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
		subject = "mailto:push@" + host
	}
	wpClient := c.WebPushHTTPClient
	if wpClient == nil {
		wpClient = webhook.NewHTTPClient(c.PushAllowPrivate)
	}
	wp, err := webpush.New(webpush.Config{PrivateKey: key, Subject: subject, HTTPClient: wpClient,
		AllowLoopbackHTTP: c.PushAllowPrivate})
	if err != nil {
		return nil, fmt.Errorf("web push: %w", err)
	}
	providers[push.WebPush] = wp
	platforms := make([]push.Platform, 0, len(providers))
	for _, p := range []push.Platform{push.FCM, push.APNs, push.WebPush} {
		if providers[p] != nil {
			platforms = append(platforms, p)
		}
	}
	m.Providers = providers
	m.Hub = &push.LocalHub{}
	if m.redis != nil {
		// Live events reach a stream held by any replica.
		h, err := pushredis.NewHub(ctx, m.redis, m.hubOptions(c.RedisPrefix)...)
		if err != nil {
			return nil, fmt.Errorf("push live hub on redis: %w", err)
		}
		m.Hub = h
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			<-ctx.Done()
			_ = h.Close()
		}()
	}
	m.Dispatcher = &push.Dispatcher{Store: m.PushStore, Broadcasts: m.PushStore, InProvince: m.inProvince, Providers: providers, Live: m.Hub,
		Limits:       map[push.Platform]*rate.Limiter{push.FCM: rate.NewLimiter(push.FCMQuota, 1000)},
		PollInterval: c.PushPoll, Lease: c.PushLease, Now: m.Now, Logger: m.Logger}
	if c.PushBackoff > 0 {
		m.Dispatcher.Backoff = push.FullJitter(c.PushBackoff, push.BackoffCap)
	}
	m.loginPushes.Store(m.Dispatcher)
	if c.MetricsAddr != "" {
		reg, pm := m.newMetrics()
		m.Dispatcher.Observe, m.Dispatcher.Finished = pm.observe, pm.finished
		if err := m.serveMetrics(reg); err != nil {
			return nil, fmt.Errorf("--metrics-addr: %w", err)
		}
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.Dispatcher.Run(ctx); err != nil {
			m.Logger.Error("push dispatcher stopped", "err", err)
		}
	}()
	m.wg.Add(1)
	go m.sweepPush(ctx)
	cursors, err := push.NewCursorSealer(keyset.DeriveKey(m.master, purposeLiveCursor))
	if err != nil {
		return nil, err
	}
	var limiter push.StreamLimiter // nil: per process
	if m.redis != nil {
		// The per-citizen stream limit holds across replicas.
		l, err := pushredis.NewLimiter(m.redis, pushredis.WithLimiterPrefix(c.RedisPrefix), pushredis.WithLimiterLogger(m.Logger))
		if err != nil {
			return nil, fmt.Errorf("push stream limiter on redis: %w", err)
		}
		limiter = l
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			<-ctx.Done()
			_ = l.Close()
		}()
	}
	return &fiberapi.PushConfig{Store: m.PushStore, Broadcasts: m.PushStore, Hub: m.Hub, VAPIDPublicKey: wp.PublicKey(), Platforms: platforms,
		AllowLoopbackHTTP: c.PushAllowPrivate, WebPushHosts: c.WebPushHosts, Heartbeat: c.PushHeartbeat,
		Streams: limiter, Cursors: cursors, ProvinceOf: m.provinceOf}, nil
}

// purposeLiveCursor derives the key that seals live stream ids, the same
// on every replica.
const purposeLiveCursor = "onedoor live cursor v1"

// provinceOf returns the province of the citizen's registry address, for
// the live stream's broadcasts ("" for none, or a citizen not found).
func (m *Main) provinceOf(ctx context.Context, citizenID string) (string, error) {
	c, err := m.Store.GetCitizen(ctx, citizenID)
	if errors.Is(err, idp.ErrNotFound) && !errors.Is(err, idp.ErrUnavailable) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	p, _ := province.FromAddress(c.Address)
	return p, nil
}

// sweepPush deletes final messages and their final jobs past the
// retention, hourly (webhook deliveries' jobs are not push's to sweep: an
// agency's delivery log stays).
func (m *Main) sweepPush(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		m.sweepPushOnce(ctx, m.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweepPushOnce is one sweep at now; it returns how many messages and jobs
// it deleted.
func (m *Main) sweepPushOnce(ctx context.Context, now time.Time) (messages, jobs int) {
	before := now.Add(-m.Config.PushRetention)
	messages, err := m.PushStore.Sweep(ctx, before)
	if err != nil && ctx.Err() == nil {
		m.Logger.Warn("push: sweep", "err", err)
	} else if messages > 0 {
		m.Logger.Info("push: swept final messages", "count", messages)
	}
	jobs, err = m.PushStore.SweepJobs(ctx, queue.KindPush, before)
	if err != nil && ctx.Err() == nil {
		m.Logger.Warn("push: sweep jobs", "err", err)
	} else if jobs > 0 {
		m.Logger.Info("push: swept final jobs", "count", jobs)
	}
	return messages, jobs
}

// inProvince tells which citizens' registry addresses are in a province,
// for a province's broadcast.
func (m *Main) inProvince(ctx context.Context, code string, citizenIDs []string) (map[string]bool, error) {
	out := make(map[string]bool, len(citizenIDs))
	for _, id := range citizenIDs {
		c, err := m.Store.GetCitizen(ctx, id)
		if errors.Is(err, idp.ErrNotFound) && !errors.Is(err, idp.ErrUnavailable) {
			continue // a deleted citizen's installation: not in any audience
		}
		if err != nil {
			return nil, err
		}
		p, ok := province.FromAddress(c.Address)
		out[id] = ok && p == code
	}
	return out, nil
}
