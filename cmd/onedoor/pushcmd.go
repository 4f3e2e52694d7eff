package main

import (
	"context"
	"flag"
	"io"
	"time"

	"github.com/onedoor/onedoor/mobileapi/province"
	"github.com/onedoor/onedoor/push"
)

// broadcastView is a broadcast as the admin commands print it.
type broadcastView struct {
	ID        string              `json:"id"`
	Province  string              `json:"province,omitempty"`
	Title     push.Text           `json:"title"`
	Body      string              `json:"body"`
	State     push.BroadcastState `json:"state"`
	Sent      int                 `json:"sent"`
	Failed    int                 `json:"failed"`
	Skipped   int                 `json:"skipped"`
	ExpiresAt *time.Time          `json:"expires_at,omitempty"`
	CreatedAt time.Time           `json:"created_at"`
	UpdatedAt time.Time           `json:"updated_at"`
}

func viewBroadcast(b *push.Broadcast) broadcastView {
	v := broadcastView{ID: b.ID, Province: b.Province, Title: b.Title, Body: b.Body, State: b.State, Sent: b.Sent,
		Failed: b.Failed, Skipped: b.Skipped, CreatedAt: b.CreatedAt, UpdatedAt: b.UpdatedAt}
	if !b.ExpiresAt.IsZero() {
		t := b.ExpiresAt
		v.ExpiresAt = &t
	}
	return v
}

// pushCmd sends a notice to every citizen, or a province's (broadcast),
// and lists broadcasts with their progress. The running servers send it,
// a page at a time, within their providers' quotas.
func pushCmd(ctx context.Context, args []string, env func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("push: want broadcast or broadcasts")
	}
	sub, args := args[0], args[1:]
	var (
		titleVI, titleEN, body, prov string
		ttl                          time.Duration
	)
	switch sub {
	case "broadcast", "broadcasts":
	default:
		return usageError("push: unknown subcommand %q", sub)
	}
	m, fs, err := adminMain(ctx, "push "+sub, args, env, func(fs *flag.FlagSet) {
		if sub == "broadcast" {
			fs.StringVar(&titleVI, "title", "", "the notice's title in Vietnamese (required)")
			fs.StringVar(&titleEN, "title-en", "", "the notice's title in English")
			fs.StringVar(&body, "body", "", "the notice's text, shown in the app (the push itself says only that there is a notice)")
			fs.StringVar(&prov, "province", "", "only citizens whose registry address is in this province (code, e.g. HN); default every citizen")
			fs.DurationVar(&ttl, "ttl", 7*24*time.Hour, "stop sending after this long")
		}
	})
	if err != nil {
		return err
	}
	defer m.Close()
	if fs.NArg() != 0 {
		return usageError("push %s: unexpected argument %q", sub, fs.Arg(0))
	}
	if sub == "broadcasts" {
		bs, err := m.PushStore.ListBroadcasts(ctx, 100)
		if err != nil {
			return err
		}
		views := make([]broadcastView, 0, len(bs))
		for _, b := range bs {
			views = append(views, viewBroadcast(b))
		}
		return m.printJSON(stdout, map[string]any{"broadcasts": views})
	}
	switch {
	case titleVI == "":
		return usageError("push broadcast: --title is required")
	case ttl <= 0:
		return usageError("push broadcast: --ttl must be positive")
	}
	if prov != "" {
		if _, ok := province.Get(prov); !ok {
			return usageError("push broadcast: unknown --province %q", prov)
		}
	}
	b := &push.Broadcast{Province: prov, Title: push.Text{VI: titleVI, EN: titleEN}, Body: body, ExpiresAt: m.Now().Add(ttl)}
	if err := m.PushStore.CreateBroadcast(ctx, b); err != nil {
		return err
	}
	return m.printJSON(stdout, viewBroadcast(b))
}
