package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/onedoor/onedoor/consent"
)

// entryView is an access-log entry as the admin commands print it.
type entryView struct {
	ID        string    `json:"id"`
	Citizen   string    `json:"citizen"`
	Seq       int64     `json:"seq"`
	At        time.Time `json:"at"`
	Agency    string    `json:"agency,omitempty"`
	ClientID  string    `json:"client_id,omitempty"`
	Operator  string    `json:"operator,omitempty"`
	Channel   string    `json:"channel"`
	Items     []string  `json:"items"`
	Purpose   string    `json:"purpose,omitempty"`
	ConsentID string    `json:"consent_id,omitempty"`
	Basis     string    `json:"basis,omitempty"`
	Law       string    `json:"law,omitempty"`
	Outcome   string    `json:"outcome"`
	Reason    string    `json:"reason,omitempty"`
	// BasisID and BasisVersion: the legal basis relied on, at its version
	// then; Names: the recipient's names at the release.
	BasisID      string         `json:"basis_id,omitempty"`
	BasisVersion int64          `json:"basis_version,omitempty"`
	Names        *consent.Names `json:"names,omitempty"`
	Hash         string         `json:"hash"`
	FlaggedAt    *time.Time     `json:"flagged_at,omitempty"`
	FlagNote     string         `json:"flag_note,omitempty"`
}

func viewEntry(e *consent.Entry) entryView {
	return entryView{ID: e.ID, Citizen: e.CitizenID, Seq: e.Seq, At: e.At, Agency: e.Actor.Agency, ClientID: e.Actor.ClientID,
		Operator: e.Actor.Operator, Channel: string(e.Channel), Items: nonNil(e.Items), Purpose: e.Purpose, ConsentID: e.ConsentID,
		Basis: string(e.Basis), Law: e.Law, Outcome: string(e.Outcome), Reason: e.Reason,
		BasisID: e.BasisID, BasisVersion: e.BasisVersion, Names: e.Names,
		Hash: base64.RawURLEncoding.EncodeToString(e.Hash), FlaggedAt: e.FlaggedAt, FlagNote: e.FlagNote}
}

// auditCmd checks the access log (verify), commits a checkpoint now
// (checkpoint) and lists what citizens flagged as "this wasn't me" (flags).
func auditCmd(ctx context.Context, args []string, env func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("audit: want verify, checkpoint or flags")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "verify", "checkpoint", "flags":
	default:
		return usageError("audit: unknown subcommand %q", sub)
	}
	var (
		citizen string
		wcfg    Config // the witnesses' flags of verify
	)
	m, fs, err := adminMain(ctx, "audit "+sub, args, env, func(fs *flag.FlagSet) {
		if sub == "flags" {
			fs.StringVar(&citizen, "citizen", "", "only this citizen's flagged entries (the IdP's subject)")
		}
		if sub == "verify" {
			wcfg.auditWitnessFlags(fs)
		}
	})
	if err != nil {
		return err
	}
	defer m.Close()
	if fs.NArg() != 0 {
		return usageError("audit %s: unexpected argument %q", sub, fs.Arg(0))
	}
	switch sub {
	case "verify":
		ws, err := wcfg.Witnesses()
		if err != nil {
			return usageError("audit verify: %v", err)
		}
		if q := wcfg.AuditWitnessQuorum; q < 0 || q > len(ws) {
			return usageError("audit verify: --audit-witness-quorum must be between 0 and %d", len(ws))
		}
		_, verifier, err := m.AuditKeys()
		if err != nil {
			return err
		}
		r, err := consent.Verify(ctx, m.ConsentStore, verifier)
		if err != nil {
			return fmt.Errorf("audit verify: %w", err)
		}
		if r.Intact() {
			// The witnesses' cosignatures: what the operator cannot
			// forge. A rewrite below a witnessed size breaks one.
			if err := consent.VerifyWitnesses(ctx, m.ConsentStore, ws, wcfg.WitnessQuorum(), r); err != nil {
				return fmt.Errorf("audit verify: %w", err)
			}
		}
		if err := m.printJSON(stdout, r); err != nil {
			return err
		}
		if !r.Intact() {
			return fmt.Errorf("audit verify: %w", r.Broken)
		}
		return nil
	case "checkpoint":
		cp, err := m.Checkpointer.Commit(ctx)
		if err != nil {
			return err
		}
		if cp == nil {
			if cp, err = m.ConsentStore.LastCheckpoint(ctx); err != nil && !errors.Is(err, consent.ErrNotFound) {
				return err
			}
		}
		vkey, err := m.AuditVerifierKey()
		if err != nil {
			return err
		}
		out := map[string]any{"tree_size": 0, "verifier_key": vkey}
		if cp != nil {
			out = map[string]any{"tree_size": cp.Size, "root": base64.StdEncoding.EncodeToString(cp.Root), "created_at": cp.CreatedAt,
				"note": cp.Note, "verifier_key": vkey}
		}
		return m.printJSON(stdout, out)
	}
	// flags: every flagged entry, newest flag first.
	out := []entryView{}
	cursor := ""
	for {
		page, next, err := m.ConsentStore.ListEntries(ctx, consent.EntryQuery{CitizenID: citizen, Flagged: true, Page: consent.Page{Cursor: cursor, Limit: consent.MaxLimit}})
		if errors.Is(err, consent.ErrInvalid) {
			return usageError("audit flags: %v", err)
		}
		if err != nil {
			return err
		}
		for _, e := range page {
			out = append(out, viewEntry(e))
		}
		if next == "" {
			break
		}
		cursor = next
	}
	return m.printJSON(stdout, map[string]any{"entries": out})
}
