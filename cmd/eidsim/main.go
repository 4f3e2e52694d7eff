// Command eidsim is the reference eID app on the command line: it enrolls a
// device, answers QR-code logins and obtains the app's own tokens with its
// device key (the JWT-bearer grant, docs/eid-app-protocol.md).
//
//	eidsim enroll  --home DIR --idp URL --personal-id N --activation-code C [--device-name NAME] [--platform P] [--model M]
//	eidsim approve --home DIR [--match NN] [--deny] [--as TAX_CODE|PERSONAL_ID] [--share claim,claim | --decline claim,claim] [--json] PAYLOAD|ID
//	eidsim pending --home DIR
//	eidsim login   --home DIR
//	eidsim show    --home DIR
//	eidsim devices --home DIR
//	eidsim revoke-device --home DIR DEVICE_ID
//	eidsim api --home DIR [--api URL] [--include] [-H 'Name: value']... METHOD PATH [BODY|@FILE]
//	eidsim events --home DIR [--api URL] [--max N]
//	eidsim representations --home DIR [--api URL]
//	eidsim mandate grant --home DIR [--api URL] --organisation TAX|--person PID --grantee PID
//	                     --service CODE... [--category C]... [--valid-from DATE] --valid-until DATE [--may-delegate]
//	eidsim mandate list --home DIR [--api URL]
//	eidsim mandate accept|revoke --home DIR [--api URL] ID
//
// approve takes the login page's QR payload or its https app link
// (ISSUER/app/login?request=ID, what the same-device button opens), as the
// real app does when the operating system hands it that link. The QR
// payload is approved across devices: the app offers three numbers and
// --match picks the one the browser's login page shows (a wrong pick denies
// the login; without --match approve fails and lists the three). The app
// link is approved on the same device: no pick, and the IdP answers with a
// return URL, printed, that the browser which started the login opens to
// continue (with its one-time code).
//
// api calls the mobile API as the enrolled citizen: it obtains an access
// token minted for the API alone with the device key (cached in the home
// until shortly before it expires), sends METHOD to the API URL followed by
// PATH, prints the response body and exits 0 on a 2xx answer, 1 otherwise.
//
// events registers the app for FCM pushes (with a stable token of its own)
// when the API offers them, then follows the citizen's live stream
// (GET /v1/events) and prints one JSON line per notification, with what
// GET /v1/notifications/{id} says of it. It keeps the last event's id in the
// home and resumes after it, across reconnections and runs; it exits 0
// after --max notifications or when interrupted.
//
// representations prints whom the citizen may act for, and why. mandate
// grant signs the mandate's terms with the device key (the evidence the API
// keeps) and grants it; list, accept and revoke print the mandates as the
// API answers them, as JSON.
//
// Exit codes: 0 success, 1 failure, 2 usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/onedoor/onedoor/idp/eid/eidapp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help") {
		// Every command's flags, with their defaults.
		fmt.Fprint(stdout, usageHead)
		for _, c := range commands {
			fmt.Fprint(stdout, strings.TrimPrefix(usage(c), usageHead))
		}
		return 0
	}
	o, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage(o.cmd))
		return 0
	}
	if err != nil {
		cmd := ""
		if len(args) > 0 {
			cmd = args[0]
		}
		fmt.Fprintf(stderr, "eidsim: %v\n\n%s", err, usage(cmd))
		return 2
	}
	if err := execute(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "eidsim %s: %v\n", o.cmd, err)
		return 1
	}
	return 0
}

func execute(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	app, err := eidapp.Open(o.home)
	if err != nil {
		return err
	}
	switch o.cmd {
	case "enroll":
		app.Platform, app.Model = o.platform, o.model
		e, err := app.Enroll(ctx, o.idp, o.personalID, o.activationCode, o.deviceName)
		if err != nil {
			return err
		}
		return printJSON(stdout, map[string]string{"device_id": e.DeviceID, "level": e.Level})
	case "pending":
		v, err := app.Pending(ctx)
		if err != nil {
			return err
		}
		return printJSON(stdout, v)
	case "approve":
		if eidapp.IsRequestID(o.payload) {
			// A request pending lists: the payload its QR code would carry.
			p, err := app.RequestPayload(o.payload)
			if err != nil {
				return err
			}
			o.payload = p
		}
		share := o.share
		if o.decline != nil {
			// Every requested claim but the declined ones: the IdP refuses
			// the approval if one of them was required.
			v, err := app.Fetch(ctx, o.payload)
			if err != nil {
				return err
			}
			share = []string{}
			for _, c := range v.Claims {
				if !slices.Contains(o.decline, c.Name) {
					share = append(share, c.Name)
				}
			}
		}
		res, err := app.ApproveAs(ctx, o.payload, o.match, o.deny, share, o.as)
		if errors.Is(err, eidapp.ErrWrongMatch) && res != nil && o.json {
			_ = printJSON(stdout, res)
		}
		if err != nil {
			return err
		}
		if o.json {
			return printJSON(stdout, res)
		}
		shared := "none"
		if len(res.Claims) > 0 {
			shared = strings.Join(res.Claims, ", ")
		}
		fmt.Fprintf(stdout, "relying party: %s (%s)\n", clean(res.ClientName), clean(res.ClientID))
		if res.Purpose != "" {
			fmt.Fprintf(stdout, "purpose:       %s (%s)\n", clean(res.Purpose), clean(res.PurposeCode))
		}
		if res.MatchNumber != "" {
			fmt.Fprintf(stdout, "match number:  %s (picked among %s)\n", clean(res.MatchNumber), clean(strings.Join(res.MatchChoices, ", ")))
		}
		if res.ActAs != "" {
			fmt.Fprintf(stdout, "acting for:    %s (%s)\n", clean(res.ActAsName), clean(res.ActAs))
		}
		fmt.Fprintf(stdout, "claims shared: %s\n", clean(shared))
		if len(res.Declined) > 0 {
			fmt.Fprintf(stdout, "declined:      %s\n", clean(strings.Join(res.Declined, ", ")))
		}
		fmt.Fprintf(stdout, "decision:      %s (IdP status: %s)\n", res.Decision, clean(res.Status))
		if res.ReturnURL != "" {
			fmt.Fprintf(stdout, "return to:     %s\n", clean(res.ReturnURL))
		}
		return nil
	case "login":
		t, err := app.Login(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "logged in to %s as %s\n", app.Enrollment().IDP, clean(t.Subject))
		fmt.Fprintf(stdout, "scope %s; access token valid until %s\n", clean(t.Scope), t.ExpiresAt.Local().Format(time.DateTime))
		fmt.Fprintf(stdout, "tokens stored in %s\n", filepath.Join(app.Home, eidapp.TokensFile))
		return nil
	case "show":
		e := app.Enrollment()
		if e == nil {
			return fmt.Errorf("%w: no %s in %s", eidapp.ErrNotEnrolled, eidapp.DeviceFile, o.home)
		}
		fmt.Fprintf(stdout, "device id:   %s\n", e.DeviceID)
		fmt.Fprintf(stdout, "idp:         %s\n", e.IDP)
		fmt.Fprintf(stdout, "personal id: %s\n", e.PersonalID)
		fmt.Fprintf(stdout, "device name: %s\n", clean(e.DeviceName))
		fmt.Fprintf(stdout, "level:       %s\n", e.Level)
		fmt.Fprintf(stdout, "enrolled at: %s\n", e.EnrolledAt.Local().Format(time.DateTime))
		return nil
	case "devices":
		ds, err := app.Devices(ctx)
		if err != nil {
			return err
		}
		return printJSON(stdout, ds)
	case "api":
		return callAPI(ctx, app, o, stdout)
	case "events":
		return followEvents(ctx, app, o, stdout, stderr)
	case "representations":
		rs, err := app.Representations(ctx, o.api)
		if err != nil {
			return err
		}
		return printJSON(stdout, nonNil(rs))
	case "mandate grant":
		t := eidapp.MandateTerms{Organisation: o.organisation, Person: o.person, Grantee: o.grantee,
			Services: o.services, Categories: o.categories, ValidUntil: o.validUntil, MayDelegate: o.mayDelegate}
		if !o.validFrom.IsZero() {
			t.ValidFrom = &o.validFrom
		}
		m, err := app.GrantMandate(ctx, o.api, t)
		if err != nil {
			return err
		}
		return printJSON(stdout, m)
	case "mandate list":
		ms, err := app.Mandates(ctx, o.api)
		if err != nil {
			return err
		}
		return printJSON(stdout, nonNil(ms))
	case "mandate accept":
		m, err := app.AcceptMandate(ctx, o.api, o.mandateID)
		if err != nil {
			return err
		}
		return printJSON(stdout, m)
	case "mandate revoke":
		m, err := app.RevokeMandate(ctx, o.api, o.mandateID)
		if err != nil {
			return err
		}
		return printJSON(stdout, m)
	case "revoke-device":
		if err := app.RevokeDevice(ctx, o.deviceID); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked device %s\n", clean(o.deviceID))
		return nil
	}
	return fmt.Errorf("unknown command %q", o.cmd) // parseArgs refuses these first
}

// nonNil prints an empty list as [], not null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// clean keeps text that came from the IdP from driving the terminal.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) { // Cf: bidi overrides and other invisible marks
			return '?'
		}
		return r
	}, s)
}
