package fcm

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/onedoor/onedoor/push"
)

// maxTTL is the longest time to live FCM accepts: four weeks.
const maxTTL = 4 * 7 * 24 * time.Hour

// The body of messages:send, in the field names of FCM's v1 message
// resource (proto field names, which the API accepts beside lowerCamel).
type (
	sendRequest struct {
		Message message `json:"message"`
	}
	message struct {
		Token        string            `json:"token"`
		Notification *notification     `json:"notification,omitempty"`
		Data         map[string]string `json:"data,omitempty"`
		Android      *androidConfig    `json:"android,omitempty"`
		APNS         *apnsConfig       `json:"apns,omitempty"`
	}
	notification struct {
		Title string `json:"title,omitempty"`
		Body  string `json:"body,omitempty"`
	}
	androidConfig struct {
		Priority    string `json:"priority,omitempty"`
		CollapseKey string `json:"collapse_key,omitempty"`
		TTL         string `json:"ttl,omitempty"`
	}
	apnsConfig struct {
		Headers map[string]string `json:"headers,omitempty"`
	}
)

// encodeMessage builds the messages:send body for one notification.
func encodeMessage(token string, n *push.Notification, now time.Time) ([]byte, error) {
	m := message{
		Token:   token,
		Data:    make(map[string]string, len(n.Data)+2),
		Android: &androidConfig{Priority: "NORMAL", CollapseKey: n.CollapseKey},
		APNS:    &apnsConfig{Headers: map[string]string{"apns-priority": "5"}},
	}
	if n.Title != "" || n.Body != "" {
		m.Notification = &notification{Title: n.Title, Body: n.Body}
	}
	for k, v := range n.Data {
		m.Data[k] = v
	}
	// Set last: the app relies on these two.
	m.Data["message_id"] = n.MessageID
	m.Data["kind"] = n.Kind
	if n.Priority == push.High {
		m.Android.Priority = "HIGH"
		m.APNS.Headers["apns-priority"] = "10"
	}
	if n.CollapseKey != "" {
		m.APNS.Headers["apns-collapse-id"] = n.CollapseKey
	}
	if !n.Expires.IsZero() {
		// Past expiry gives 0s and apns-expiration 0: deliver now or
		// never, which is what an overdue notification deserves.
		ttl := min(max(n.Expires.Sub(now), 0), maxTTL)
		m.Android.TTL = strconv.FormatInt(int64(ttl/time.Second), 10) + "s"
		exp := int64(0)
		if ttl > 0 {
			exp = n.Expires.Unix()
			if ttl == maxTTL {
				exp = now.Add(maxTTL).Unix()
			}
		}
		m.APNS.Headers["apns-expiration"] = strconv.FormatInt(exp, 10)
	}
	b, err := json.Marshal(sendRequest{Message: m})
	if err != nil {
		return nil, fmt.Errorf("fcm: encoding the message: %w", err)
	}
	return b, nil
}
