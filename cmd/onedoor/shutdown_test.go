package main

import (
	"net/http"
	"testing"
	"time"
)

// On shutdown, /readyz answers 503 for the shutdown delay before the listener
// closes, so a load balancer stops sending before connections are refused.
func TestShutdown_ReadinessDropsBeforeListenerCloses(t *testing.T) {
	e := startMain(t, func(c *Config) { c.ShutdownDelay = 400 * time.Millisecond })
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := c.Get(e.issuer + "/readyz"); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("ready before shutdown: %v %v", resp, err)
	}
	done := make(chan error, 1)
	go func() { done <- e.m.Close() }()
	saw503 := false
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.Get(e.issuer + "/readyz")
		if err != nil {
			break // the listener has closed
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			saw503 = true
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !saw503 {
		t.Error("readiness never answered 503 before the listener closed")
	}
	if err := <-done; err != nil {
		t.Errorf("Close: %v", err)
	}
}
