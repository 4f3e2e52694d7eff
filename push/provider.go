package push

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Platform names the push service an installation is reached through.
type Platform string

// The platforms an installation can register with.
const (
	FCM     Platform = "fcm"
	APNs    Platform = "apns"
	WebPush Platform = "webpush"
)

// Subscription is a browser's PushSubscription (W3C Push API), as the page
// hands it over: the push service's endpoint and the keys the payload is
// encrypted to (RFC 8291).
type Subscription struct {
	Endpoint string           `json:"endpoint"`
	Keys     SubscriptionKeys `json:"keys"`
}

// SubscriptionKeys are base64url (unpadded) encodings of the user agent's
// P-256 public key and its 16-byte authentication secret.
type SubscriptionKeys struct {
	P256DH string `json:"p256dh"`
	Auth   string `json:"auth"`
}

// Target is where one notification goes: a provider token (FCM registration
// token, APNs device token) or a Web Push subscription.
type Target struct {
	Platform     Platform
	Token        string
	Subscription *Subscription
}

// Priority tells a provider how urgently to wake the device.
type Priority int

// Priorities. High is for what the citizen waits on (a login approval);
// Normal lets the provider batch delivery to save battery.
const (
	Normal Priority = iota
	High
)

// Notification is what a provider delivers to one installation. It names
// no person, application or result unless the citizen opted the service
// into full text: the app fetches the content by MessageID after unlock.
type Notification struct {
	// MessageID is opaque and stable across retries, so the app drops a
	// duplicate of an at-least-once delivery.
	MessageID string
	// Kind is the notification kind (status_change, result,
	// login_approval, notice), for the app to route the tap.
	Kind string
	// Title and Body are the localized alert text.
	Title, Body string
	// CollapseKey, when set, lets the provider replace an undelivered
	// notification with the same key (APNs apns-collapse-id, FCM
	// collapse_key, Web Push Topic).
	CollapseKey string
	Priority    Priority
	// Expires is when the provider should stop trying; zero lets the
	// provider keep it as long as it keeps anything.
	Expires time.Time
	// Data is extra key/value data for the app (message_id and kind are
	// always added by the provider packages).
	Data map[string]string
}

// Provider delivers notifications through one push service.
type Provider interface {
	Platform() Platform
	// Send delivers n to t. Its errors are *ProviderError where the push
	// service answered; anything else (a dial failure, a timeout) is
	// transient.
	Send(ctx context.Context, t Target, n *Notification) error
}

// ErrUnregistered matches a *ProviderError whose push service said the
// token or subscription is gone for good (APNs 410, FCM UNREGISTERED,
// Web Push 404/410): the installation is removed.
var ErrUnregistered = errors.New("push: the installation is no longer registered")

// ProviderError is a push service's refusal of one send, or a provider
// package's own refusal before sending (StatusCode 0: a payload too large,
// a malformed target), which no retry would get past.
type ProviderError struct {
	Platform   Platform
	StatusCode int
	// Reason is the service's own error code (APNs "BadDeviceToken", FCM
	// "UNREGISTERED"), safe to log: it holds no token or content.
	Reason string
	// Retryable is set for a refusal that a later attempt may get past
	// (429, 5xx, a quota); the rest are permanent.
	Retryable bool
	// RetryAfter is the service's Retry-After, zero when it gave none.
	RetryAfter time.Duration
	// Unregistered marks a token or subscription that is gone for good.
	Unregistered bool
}

func (e *ProviderError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: status %d", e.Platform, e.StatusCode)
	if e.Reason != "" {
		fmt.Fprintf(&b, " (%s)", e.Reason)
	}
	if e.Unregistered {
		b.WriteString(": unregistered")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrUnregistered) true for an unregistered target.
func (e *ProviderError) Is(target error) bool {
	return target == ErrUnregistered && e.Unregistered
}
