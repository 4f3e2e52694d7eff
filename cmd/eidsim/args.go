package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/onedoor/onedoor/idp/eid"
)

// options are the parsed command line of one subcommand.
type options struct {
	cmd            string
	home           string
	idp            string
	personalID     string
	activationCode string
	deviceName     string
	platform       string
	model          string
	deny           bool
	match          string   // the number picked; "" for an app link
	as             string   // the party acted for (tax code or personal id); "" themselves
	share          []string // nil: every requested claim
	decline        []string // non-nil: every requested claim but these
	json           bool
	payload        string
	deviceID       string
	// api: the mobile API call.
	api     string
	include bool
	headers []header
	method  string
	path    string
	body    string
	hasBody bool
	// events: stop after this many notifications (0: never).
	max int
	// mandate grant: the terms; mandate accept, revoke: the mandate.
	organisation, person, grantee string
	services, categories          []string
	validFrom, validUntil         time.Time
	mayDelegate                   bool
	mandateID                     string
}

// header is one -H 'Name: value'; an empty value removes the header.
type header struct{ name, value string }

// defaultAPI is the mobile API's URL when neither --api nor EIDSIM_API says
// otherwise: where `onedoor serve` publishes it by default.
const defaultAPI = "http://localhost:8081"

// usageError is a command line mistake: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

const usageHead = `usage:
  eidsim enroll  --home DIR --idp URL --personal-id N --activation-code C [--device-name NAME] [--platform P] [--model M]
  eidsim approve --home DIR [--match NN] [--deny] [--as TAX_CODE|PERSONAL_ID] [--share claim,claim | --decline claim,claim] [--json] PAYLOAD|ID
  eidsim pending --home DIR
  eidsim login   --home DIR
  eidsim show    --home DIR
  eidsim devices --home DIR
  eidsim revoke-device --home DIR DEVICE_ID
  eidsim api --home DIR [--api URL] [--include] [-H 'Name: value']... METHOD PATH [BODY|@FILE]
  eidsim events --home DIR [--api URL] [--max N]
  eidsim representations --home DIR [--api URL]
  eidsim mandate grant --home DIR [--api URL] --organisation TAX|--person PID --grantee PID
                       --service CODE... [--category C]... [--valid-from DATE] --valid-until DATE [--may-delegate]
  eidsim mandate list --home DIR [--api URL]
  eidsim mandate accept|revoke --home DIR [--api URL] ID
PAYLOAD is the login page's QR payload (onedoor-eid://login?request=ID&issuer=URL) or its
https app link (ISSUER/app/login?request=ID); either must name the IdP the device is enrolled with.
A QR payload is approved across devices: --match NN picks the number the browser's page shows
among the app's three (without it, approve fails and lists them; a wrong pick denies the login).
An app link is approved on the same device: no pick; the IdP answers with a return URL, printed,
which the browser that started the login must open to continue.
DATE is YYYY-MM-DD (a whole day in Vietnam time: --valid-until includes it, --valid-from starts
with it) or an RFC 3339 date-time. mandate grant signs the terms with the device key.
ID is a login request's id as pending lists it (a login the IdP sent to this citizen's devices): it is
approved across devices, so --match NN picks the number the browser's page shows, as for a QR payload.
A login asking the representation scope lists, in pending and approve --json, the parties this citizen
may act for ("representations"); --as names one (its tax code or personal id), without it the citizen
acts for themselves.
`

var commands = []string{"enroll", "approve", "pending", "login", "show", "devices", "revoke-device", "api", "events",
	"representations", "mandate grant", "mandate list", "mandate accept", "mandate revoke"}

// flagSet declares cmd's flags into o.
func flagSet(cmd string, o *options) (*flag.FlagSet, error) {
	fs := flag.NewFlagSet("eidsim "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints errors and usage once, its own way
	fs.StringVar(&o.home, "home", "", "app home `DIR` (device.json, tokens.json)")
	switch cmd {
	case "enroll":
		fs.StringVar(&o.idp, "idp", "", "IdP issuer `URL`")
		fs.StringVar(&o.personalID, "personal-id", "", "12-digit personal identification `number`")
		fs.StringVar(&o.activationCode, "activation-code", "", "activation `code` from the authority's desk")
		fs.StringVar(&o.deviceName, "device-name", "eidsim", "device `name` shown to the citizen")
		fs.StringVar(&o.platform, "platform", runtime.GOOS, "`platform` the app declares (android, ios, web, ...), shown to the citizen beside the name")
		fs.StringVar(&o.model, "model", "eidsim", "device `model` the app declares, shown to the citizen")
	case "approve":
		fs.StringVar(&o.match, "match", "", "the two-digit `NN` the browser's login page shows, picked among the app's three choices (required to approve a QR payload)")
		fs.BoolVar(&o.deny, "deny", false, "deny the login instead of approving it")
		fs.StringVar(&o.as, "as", "", "act for this party: an organisation's `TAX_CODE` or a ward's or mandator's PERSONAL_ID, among the representations the request offers (login asking scope representation)")
		fs.Func("share", "comma-separated `claims` to share, repeatable (default: every requested claim)", func(s string) error {
			if o.share == nil {
				o.share = []string{} // set but empty: share nothing
			}
			for c := range strings.SplitSeq(s, ",") {
				if c = strings.TrimSpace(c); c != "" {
					o.share = append(o.share, c)
				}
			}
			return nil
		})
		fs.Func("decline", "comma-separated optional `claims` to decline, repeatable: share every other requested claim", func(s string) error {
			if o.decline == nil {
				o.decline = []string{}
			}
			for c := range strings.SplitSeq(s, ",") {
				if c = strings.TrimSpace(c); c != "" {
					o.decline = append(o.decline, c)
				}
			}
			return nil
		})
		fs.BoolVar(&o.json, "json", false, "print the answer as JSON")
	case "api":
		apiFlag(fs, o)
		fs.BoolVar(&o.include, "include", false, "print the status line and the response headers before the body")
		fs.BoolVar(&o.include, "i", false, "short for --include")
		addHeader := func(s string) error {
			h, err := parseHeader(s)
			if err != nil {
				return err
			}
			o.headers = append(o.headers, h)
			return nil
		}
		fs.Func("H", "request header `'Name: value'`, repeatable; replaces a default (Content-Type), 'Name:' removes it", addHeader)
		fs.Func("header", "same as -H", addHeader)
	case "events":
		apiFlag(fs, o)
		fs.IntVar(&o.max, "max", 0, "exit after `N` notifications (0: follow the stream until interrupted)")
	case "representations", "mandate list", "mandate accept", "mandate revoke":
		apiFlag(fs, o)
	case "mandate grant":
		apiFlag(fs, o)
		fs.StringVar(&o.organisation, "organisation", "", "tax `code` of the organisation the grantee may act for")
		fs.StringVar(&o.person, "person", "", "personal `id` of the ward the grantee may act for")
		fs.StringVar(&o.grantee, "grantee", "", "personal `id` of the citizen who receives the mandate")
		fs.Func("service", "service `code` the mandate covers, repeatable (or comma-separated)", listFlag(&o.services))
		fs.Func("category", "catalog `category` the mandate covers, repeatable (or comma-separated)", listFlag(&o.categories))
		fs.Func("valid-from", "when it starts: `DATE` (default now)", dateFlag(&o.validFrom, false))
		fs.Func("valid-until", "when it ends: `DATE` (that day included)", dateFlag(&o.validUntil, true))
		fs.BoolVar(&o.mayDelegate, "may-delegate", false, "let the grantee grant sub-mandates of no more than this one")
	case "login", "show", "devices", "revoke-device", "pending":
	default:
		return nil, usagef("unknown command %q", cmd)
	}
	return fs, nil
}

// apiFlag declares --api, the mobile API's URL.
func apiFlag(fs *flag.FlagSet, o *options) {
	api := os.Getenv("EIDSIM_API")
	if api == "" {
		api = defaultAPI
	}
	fs.StringVar(&o.api, "api", api, "mobile API `URL`: its --api-url, the audience of its tokens (env EIDSIM_API)")
}

// parseArgs reads the command line after the program name. Flags may come
// before or after the positional PAYLOAD; "--" ends the flags.
func parseArgs(args []string) (*options, error) {
	if len(args) == 0 {
		return nil, usagef("missing command (one of %s)", strings.Join(commands, ", "))
	}
	o := &options{cmd: args[0]}
	if o.cmd == "mandate" {
		if len(args) < 2 || strings.HasPrefix(args[1], "-") {
			return nil, usagef("mandate: missing what to do (grant, list, accept or revoke)")
		}
		o.cmd, args = "mandate "+args[1], args[1:]
	}
	fs, err := flagSet(o.cmd, o)
	if err != nil {
		return nil, err
	}
	pos, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return o, err
	}
	if err != nil {
		return nil, usagef("%s: %v", o.cmd, err)
	}
	var missing []string
	if o.home == "" {
		missing = append(missing, "--home")
	}
	switch o.cmd {
	case "enroll":
		for _, f := range []struct{ name, val string }{{"--idp", o.idp}, {"--personal-id", o.personalID}, {"--activation-code", o.activationCode}} {
			if f.val == "" {
				missing = append(missing, f.name)
			}
		}
	case "approve":
		if o.share != nil && o.decline != nil {
			return nil, usagef("approve: --share and --decline cannot be combined")
		}
		if o.match != "" && (len(o.match) != 2 || o.match[0] < '0' || o.match[0] > '9' || o.match[1] < '0' || o.match[1] > '9') {
			return nil, usagef("approve: --match %q: want the two digits the login page shows", o.match)
		}
		if len(pos) == 0 {
			missing = append(missing, "PAYLOAD")
		} else {
			o.payload, pos = pos[0], pos[1:]
		}
	case "revoke-device":
		if len(pos) == 0 {
			missing = append(missing, "DEVICE_ID")
		} else {
			o.deviceID, pos = pos[0], pos[1:]
		}
	case "mandate grant":
		switch {
		case o.organisation == "" && o.person == "":
			missing = append(missing, "--organisation or --person")
		case o.organisation != "" && o.person != "":
			return nil, usagef("mandate grant: --organisation and --person cannot be combined")
		}
		if o.grantee == "" {
			missing = append(missing, "--grantee")
		}
		if len(o.services) == 0 && len(o.categories) == 0 {
			missing = append(missing, "--service or --category")
		}
		if o.validUntil.IsZero() {
			missing = append(missing, "--valid-until")
		}
	case "mandate accept", "mandate revoke":
		if len(pos) == 0 {
			missing = append(missing, "ID")
		} else {
			o.mandateID, pos = pos[0], pos[1:]
		}
	case "events":
		if o.max < 0 {
			return nil, usagef("events: --max %d: want 0 or more", o.max)
		}
	case "api":
		switch len(pos) {
		case 0:
			missing = append(missing, "METHOD", "PATH")
		case 1:
			missing = append(missing, "PATH")
		default:
			o.method, o.path, pos = strings.ToUpper(pos[0]), pos[1], pos[2:]
			if len(pos) > 0 {
				o.body, o.hasBody, pos = pos[0], true, pos[1:]
			}
			if !validToken(o.method) {
				return nil, usagef("api: METHOD %q is not an HTTP method", o.method)
			}
			if !strings.HasPrefix(o.path, "/") || strings.HasPrefix(o.path, "//") {
				return nil, usagef("api: PATH %q must start with one / (it is relative to the API URL)", o.path)
			}
		}
	}
	if len(missing) > 0 {
		return nil, usagef("%s: missing %s", o.cmd, strings.Join(missing, ", "))
	}
	if len(pos) > 0 {
		return nil, usagef("%s: unexpected argument %q", o.cmd, pos[0])
	}
	return o, nil
}

// listFlag appends a repeatable, comma-separated flag's values.
func listFlag(dst *[]string) func(string) error {
	return func(s string) error {
		for v := range strings.SplitSeq(s, ",") {
			if v = strings.TrimSpace(v); v != "" {
				*dst = append(*dst, v)
			}
		}
		return nil
	}
}

// vietnam is where a DATE is a day.
var vietnam = time.FixedZone("ICT", 7*60*60)

// dateFlag reads a DATE: YYYY-MM-DD, a day in Vietnam time (its end when
// end is set: the day is included), or an RFC 3339 date-time.
func dateFlag(dst *time.Time, end bool) func(string) error {
	return func(s string) error {
		if d, err := time.ParseInLocation(time.DateOnly, s, vietnam); err == nil {
			if end {
				d = d.AddDate(0, 0, 1)
			}
			*dst = d
			return nil
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return fmt.Errorf("%q is neither YYYY-MM-DD nor an RFC 3339 date-time", s)
		}
		*dst = t
		return nil
	}
}

// parseHeader reads -H 'Name: value'.
func parseHeader(s string) (header, error) {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || !validToken(name) {
		return header{}, fmt.Errorf("header %q is not 'Name: value'", s)
	}
	value = strings.TrimSpace(value)
	if strings.ContainsAny(value, "\r\n\x00") {
		return header{}, fmt.Errorf("header %s: the value has a line break", name)
	}
	return header{name: name, value: value}, nil
}

// validToken reports whether s is an RFC 9110 token: a method or a header
// name.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// parseInterspersed lets flags follow positional arguments, which the flag
// package alone stops at. A login request id is base64url and may begin
// with '-': it is taken as an argument, not as an unknown flag.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		head, rest, id := args, []string(nil), ""
		for i, a := range args {
			if a == "--" {
				break
			}
			if len(a) > 1 && a[0] == '-' && eid.ValidRequestID(a) {
				head, rest, id = args[:i], args[i+1:], a
				break
			}
		}
		p, done, err := parseFlags(fs, head)
		if err != nil {
			return nil, err
		}
		pos = append(pos, p...)
		if id == "" || done { // an id after "--" was never looked for
			return pos, nil
		}
		pos = append(pos, id)
		args = rest
	}
}

// parseFlags parses flags among positional arguments until "--" (done:
// the rest is positional) or the end.
func parseFlags(fs *flag.FlagSet, args []string) (pos []string, done bool, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			return nil, false, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), true, nil
		}
		if len(rest) == 0 {
			return pos, false, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usage is the help text, with cmd's flags when cmd is known.
func usage(cmd string) string {
	var b bytes.Buffer
	b.WriteString(usageHead)
	if fs, err := flagSet(cmd, &options{}); err == nil {
		fmt.Fprintf(&b, "\nflags of %s:\n", cmd)
		fs.SetOutput(&b)
		fs.PrintDefaults()
	}
	return b.String()
}
