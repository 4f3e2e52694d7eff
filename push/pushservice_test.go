package push

import "testing"

func TestServiceAllowed(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		loopback bool
		want     bool
	}{
		{"https://fcm.googleapis.com/fcm/send/abc", false, true},
		{"https://updates.push.services.mozilla.com/wpush/v2/abc", false, true},
		{"https://wns2-par02p.notify.windows.com/w/?token=abc", false, true},
		{"https://web.push.apple.com/QGuQyavXut", false, true},
		{"https://evil.example/fcm.googleapis.com", false, false},
		{"https://fcm.googleapis.com.evil.example/x", false, false},
		{"https://notfcm.googleapis.com/x", false, false},
		{"http://127.0.0.1:8080/push", false, false},
		{"http://127.0.0.1:8080/push", true, true},
		{"http://localhost:8080/push", true, true},
		{"https://10.0.0.1/push", true, false},
	} {
		if got := ServiceAllowed(tc.endpoint, DefaultWebPushHosts, tc.loopback); got != tc.want {
			t.Errorf("%s (loopback %v): %v, want %v", tc.endpoint, tc.loopback, got, tc.want)
		}
	}
}
