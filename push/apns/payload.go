package apns

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/onedoor/onedoor/push"
)

var errPayloadTooLarge = errors.New("payload over APNs' limit")

// The aps dictionary of an alert. mutable-content lets the app's
// notification service extension replace the text after fetching the
// message by its id.
type aps struct {
	Alert          alert  `json:"alert"`
	Sound          string `json:"sound"`
	MutableContent int    `json:"mutable-content"`
}

type alert struct {
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
}

// encodePayload builds the JSON APNs delivers to the app: the aps
// dictionary, message_id and kind at the top level, and n.Data beside them.
// A Data key that collides with those three is dropped: the provider's own
// keys are what the app relies on.
func encodePayload(n *push.Notification) ([]byte, error) {
	m := make(map[string]any, len(n.Data)+3)
	for k, v := range n.Data {
		m[k] = v
	}
	m["aps"] = aps{Alert: alert{Title: n.Title, Body: n.Body}, Sound: "default", MutableContent: 1}
	m["message_id"] = n.MessageID
	m["kind"] = n.Kind

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // \u003c for < costs bytes out of the 4 KB
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(b) > MaxPayloadSize {
		return nil, errPayloadTooLarge
	}
	return b, nil
}
