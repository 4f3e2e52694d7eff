package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/push"
)

// pushMetrics are the push queue's and providers' Prometheus metrics.
type pushMetrics struct {
	final   *prometheus.CounterVec
	sends   *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

// newMetrics registers the process's and push's collectors on a registry
// of their own (no global state: tests run several Mains in one process).
func (m *Main) newMetrics() (*prometheus.Registry, *pushMetrics) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pm := &pushMetrics{
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "onedoor_push_sends_total",
			Help: "Sends to a push provider, by platform and outcome (ok, unregistered, retryable, permanent, transport) and the provider's reason code.",
		}, []string{"platform", "outcome", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "onedoor_push_send_seconds",
			Help:    "Time a push provider took to answer one send.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"platform"}),
	}
	pm.final = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "onedoor_push_messages_total",
		Help: "Notifications that became final, by state: accepted (every device's push service took it), dead (given up), skipped (preferences, or no device).",
	}, []string{"state"})
	reg.MustRegister(pm.sends, pm.latency, pm.final)
	m.registerIDPMetrics(reg)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "onedoor_push_queue_depth",
		Help: "Notifications not yet final (queued, being sent, or waiting for a retry), across every replica.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := m.PushStore.Depth(ctx)
		if err != nil {
			return -1 // an unreadable queue is an alert of its own
		}
		return float64(n)
	}))
	m.registerWitnessMetrics(reg)
	return reg, pm
}

// registerWitnessMetrics adds per-witness gauges: the largest size it
// cosigned and when (from the store, so every replica reports the same),
// and this replica's failures in a row.
func (m *Main) registerWitnessMetrics(reg *prometheus.Registry) {
	if m.Cosigner == nil {
		return
	}
	latest := func(w *consent.Witness) *consent.Cosignature {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		cs, err := m.ConsentStore.LatestCosignatures(ctx)
		if err != nil {
			return nil
		}
		for _, c := range cs {
			if c.Witness == w.Name && c.KeyHash == w.KeyHash {
				return c
			}
		}
		return &consent.Cosignature{}
	}
	for _, w := range m.Cosigner.Witnesses {
		labels := prometheus.Labels{"witness": w.Name}
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "onedoor_audit_witness_cosigned_size", ConstLabels: labels,
			Help: "The largest audit checkpoint size the witness cosigned (0: none yet; -1: the store is unreadable).",
		}, func() float64 {
			if c := latest(w); c != nil {
				return float64(c.Size)
			}
			return -1
		}), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "onedoor_audit_witness_cosigned_timestamp_seconds", ConstLabels: labels,
			Help: "The witness's timestamp of its latest cosignature, in Unix seconds (0: none yet or unreadable): alert when it lags the checkpoints.",
		}, func() float64 {
			if c := latest(w); c != nil && !c.SignedAt.IsZero() {
				return float64(c.SignedAt.Unix())
			}
			return 0
		}), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "onedoor_audit_witness_failures", ConstLabels: labels,
			Help: "Requests to the witness that failed in a row on this replica (0 after a cosignature).",
		}, func() float64 { return float64(m.Cosigner.Failures(w)) }))
	}
}

// idpMetrics count the identity provider's events that operators watch
// (web.Observer). They exist whether or not /metrics is served, so the IdP
// needs no nil checks; newMetrics registers them.
type idpMetrics struct {
	dpopRefused    *prometheus.CounterVec
	passkeyClones  prometheus.Counter
	suppressedPush prometheus.Counter
}

func newIDPMetrics() *idpMetrics {
	return &idpMetrics{
		dpopRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "onedoor_dpop_refusals_total",
			Help: "DPoP proofs the IdP refused, by endpoint (token, par, userinfo) and reason (invalid, nonce). A rise in invalid is a client bug or replayed proofs; nonce refusals are normal at a client's first request.",
		}, []string{"endpoint", "reason"}),
		passkeyClones: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "onedoor_passkey_clone_suspected_total",
			Help: "Passkey logins refused because the authenticator's signature counter did not advance (a copied authenticator).",
		}),
		suppressedPush: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "onedoor_login_prompts_suppressed_total",
			Help: "login_hint logins shown as a QR code instead of a prompt to the citizen's app, because the citizen had had too many prompts (push fatigue).",
		}),
	}
}

func (im *idpMetrics) DPoPRefused(endpoint, reason string) {
	im.dpopRefused.WithLabelValues(endpoint, reason).Inc()
}
func (im *idpMetrics) PasskeyCloneSuspected() { im.passkeyClones.Inc() }
func (im *idpMetrics) PromptSuppressed()      { im.suppressedPush.Inc() }

// registerIDPMetrics registers the IdP's counters and gauges: the login
// status requests held open (?wait=) and the delivery queue, by kind.
func (m *Main) registerIDPMetrics(reg *prometheus.Registry) {
	im := m.idpMetrics
	if im == nil {
		im = newIDPMetrics()
		m.idpMetrics = im
	}
	reg.MustRegister(im.dpopRefused, im.passkeyClones, im.suppressedPush)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "onedoor_login_status_waits",
		Help: "Login status requests this replica holds open until the app decides (?wait=); bounded per replica and per client address.",
	}, func() float64 {
		if m.Web == nil {
			return 0
		}
		return float64(m.Web.Waiting())
	}))
	// One durable queue, one gauge per kind of delivery.
	for _, g := range []struct{ name, help, kind string }{
		{"onedoor_backchannel_logout_queue_depth",
			"Back-channel logout deliveries not yet final (due, being sent, or waiting for a retry), across every replica.",
			idp.DeliveryBackchannelLogout},
		{"onedoor_ciba_ping_queue_depth",
			"CIBA ping callbacks not yet final (waiting for the citizen, due, being sent, or waiting for a retry), across every replica.",
			idp.DeliveryCIBAPing},
	} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.name, Help: g.help}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := m.Store.PendingDeliveries(ctx, g.kind)
			if err != nil {
				return -1 // an unreadable queue is an alert of its own
			}
			return float64(n)
		}))
	}
}

// knownReasons are the documented error codes of FCM HTTP v1 and APNs,
// and the provider packages' own refusals.
var knownReasons = func() map[string]bool {
	m := map[string]bool{"": true}
	for _, r := range []string{
		// FCM (google.rpc.Status and FcmError codes)
		"UNREGISTERED", "INVALID_ARGUMENT", "QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL", "SENDER_ID_MISMATCH",
		"THIRD_PARTY_AUTH_ERROR", "NOT_FOUND", "PERMISSION_DENIED", "UNAUTHENTICATED", "RESOURCE_EXHAUSTED",
		// APNs
		"BadCollapseId", "BadDeviceToken", "BadExpirationDate", "BadMessageId", "BadPriority", "BadTopic",
		"DeviceTokenNotForTopic", "DuplicateHeaders", "IdleTimeout", "InvalidPushType", "MissingDeviceToken",
		"MissingTopic", "PayloadEmpty", "TopicDisallowed", "BadCertificate", "BadCertificateEnvironment",
		"ExpiredProviderToken", "Forbidden", "InvalidProviderToken", "MissingProviderToken", "UnrelatedKeyIdInToken",
		"BadPath", "MethodNotAllowed", "ExpiredToken", "Unregistered", "PayloadTooLarge", "TooManyProviderTokenUpdates",
		"TooManyRequests", "InternalServerError", "ServiceUnavailable", "Shutdown",
		// refusals before sending
		"InvalidSubscription", "Expired",
	} {
		m[r] = true
	}
	return m
}()

// finished counts a message that became final.
func (pm *pushMetrics) finished(s push.State) { pm.final.WithLabelValues(string(s)).Inc() }

// observe records one send.
func (pm *pushMetrics) observe(r push.SendResult) {
	outcome, reason := "ok", ""
	var pe *push.ProviderError
	switch {
	case r.Err == nil:
	case errors.As(r.Err, &pe):
		reason = pe.Reason
		switch {
		case pe.Unregistered:
			outcome = "unregistered"
		case pe.Retryable:
			outcome = "retryable"
		default:
			outcome = "permanent"
		}
	default:
		outcome = "transport"
	}
	// Only the providers' documented codes become label values: a Web Push
	// service is chosen by a citizen and may answer anything (cardinality).
	if !knownReasons[reason] {
		reason = "other"
	}
	pm.sends.WithLabelValues(string(r.Platform), outcome, reason).Inc()
	pm.latency.WithLabelValues(string(r.Platform)).Observe(r.Duration.Seconds())
}

// serveMetrics serves /metrics on --metrics-addr: a listener of its own,
// for the operators' network only, never the public one.
func (m *Main) serveMetrics(reg *prometheus.Registry) error {
	ln, err := net.Listen("tcp", m.Config.MetricsAddr)
	if err != nil {
		return err
	}
	m.MetricsAddr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Timeout: 10 * time.Second}))
	m.serve(ln, mux)
	m.Logger.Info("metrics listening", "addr", m.MetricsAddr)
	return nil
}
