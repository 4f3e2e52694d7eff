package main

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// TestTwoNodes_ClientChangesReachEveryReplica: both replicas serve a client
// from memory; an admin command (a third process) deletes it, then
// recreates it under the same id with a new secret. Each replica refuses the
// deleted client within the client cache's bound, and once a replica accepts
// the new secret it never again accepts the old one.
func TestTwoNodes_ClientChangesReachEveryReplica(t *testing.T) {
	cl := startCluster(t, false)
	var client struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	create := func() {
		admin(t, cl.bin, cl.env, &client, "client", "create", "--id", "cache-agency", "--name", "Cache agency",
			"--grant-type", "client_credentials", "--scope", "registry.read", "--postgres-dsn", cl.dsn)
	}
	create()
	old := client.Secret
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Timeout: 30 * time.Second})
	token := func(n *node, secret string) error {
		cc := clientcredentials.Config{ClientID: client.ID, ClientSecret: secret, TokenURL: n.url + "/token",
			AuthStyle: oauth2.AuthStyleInHeader}
		_, err := cc.Token(ctx)
		var re *oauth2.RetrieveError
		if err != nil && (!errors.As(err, &re) || re.ErrorCode != "invalid_client") {
			t.Fatalf("node %s: got %v, want a token or invalid_client", n.name, err)
		}
		return err
	}
	eventually := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, n := range []*node{cl.a, cl.b} {
		for range 3 { // warm the replica's cache
			if err := token(n, old); err != nil {
				t.Fatalf("node %s refused the new client: %v", n.name, err)
			}
		}
	}

	var deleted map[string]any
	admin(t, cl.bin, cl.env, &deleted, "client", "delete", "--id", client.ID, "--postgres-dsn", cl.dsn)
	for _, n := range []*node{cl.a, cl.b} {
		eventually("node "+n.name+" to refuse the deleted client", func() bool { return token(n, old) != nil })
	}

	create()
	if client.Secret == old {
		t.Fatal("recreated client has the old secret")
	}
	for _, n := range []*node{cl.a, cl.b} {
		eventually("node "+n.name+" to accept the recreated client", func() bool { return token(n, client.Secret) == nil })
		for range 10 {
			if token(n, old) == nil {
				t.Fatalf("node %s accepted the old secret after serving the new one", n.name)
			}
		}
	}
}
