// Command onedoor runs the OneDoor platform and its admin commands:
//
//	onedoor [serve] [flags]      run the identity provider (the default)
//	onedoor migrate              apply database migrations
//	onedoor client create|list|show|delete|approve|reject
//	onedoor citizen import|list|show|activate|revoke-device|guardian
//	onedoor org import|list|show
//	onedoor mandate list|show|revoke
//	onedoor keys list|rotate
//	onedoor agency create|list|token|grant-basis|amend-basis|revoke-basis|bases
//	onedoor audit verify|checkpoint|flags
//	onedoor push broadcast|broadcasts
//
// `onedoor --demo` runs everything on the embedded default with fake demo
// data and a demo agency site.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // quiet hours are counted in citizens' zones, on any host
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// exit codes
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// run dispatches to a command and returns the process exit code.
func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	// `onedoor client --help`: help in place of a subcommand.
	if cmd != "serve" && len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help") {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, env, stdout, stderr)
	case "migrate":
		err = migrate(ctx, args, env, stdout)
	case "client":
		err = clientCmd(ctx, args, env, stdout)
	case "citizen":
		err = citizenCmd(ctx, args, env, stdout)
	case "org":
		err = orgCmd(ctx, args, env, stdout)
	case "mandate":
		err = mandateCmd(ctx, args, env, stdout)
	case "keys":
		err = keysCmd(ctx, args, env, stdout)
	case "agency":
		err = agencyCmd(ctx, args, env, stdout)
	case "audit":
		err = auditCmd(ctx, args, env, stdout)
	case "blobs":
		err = blobsCmd(ctx, args, env, stdout)
	case "push":
		err = pushCmd(ctx, args, env, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		err = usageError("unknown command %q", cmd)
	}
	if err == nil {
		return exitOK
	}
	var help *helpRequest
	if errors.As(err, &help) {
		fmt.Fprint(stdout, usage)
		help.print(stdout)
		return exitOK
	}
	fmt.Fprintln(stderr, "onedoor:", err)
	var ue *usageErr
	if errors.As(err, &ue) || errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	return exitFail
}

const usage = `usage:
  onedoor [serve] [--demo] [--idp-addr A] [--issuer URL] [--data-dir D | --postgres-dsn DSN] [--redis-url URL]
  onedoor migrate [storage flags]
  onedoor client create --name N --redirect-uri U... [--grant-type G...] [--scope "S S"] [--auth-method M] [--jwks FILE | --jwks-uri URL] [--par-required] [--id-token-alg ES256|RS256]
  onedoor client list [--pending] | show ID | delete ID
  onedoor client approve --id ID --digest D [--scopes "S S"] [--claims a,b] | reject --id ID
  onedoor citizen import FILE.json|FILE.csv
  onedoor citizen list | show --id N | activate --id N --level substantial|high | revoke-device --id N --device D
  onedoor citizen guardian --ward N --guardian N [--until YYYY-MM-DD] [--end]
  onedoor org import FILE.json|FILE.csv | list [--after TAX_CODE] [--limit N] | show TAX_CODE
  onedoor mandate list --personal-id N | show ID | revoke ID
  onedoor keys list | rotate [--alg ES256|RS256] [--force]
  onedoor agency create --code CODE --name NAME [--name-en NAME] [--parent CODE] [--province CODE]
  onedoor agency list
  onedoor agency token --agency CODE [--ttl 24h] [--max-uses 1] | token list | token revoke --id ID
  onedoor agency grant-basis --agency CODE --purpose CODE --items a,b --basis legal_obligation|public_task --law "..." --operator NAME --reason "..."
  onedoor agency amend-basis ID [--items a,b] [--law "..."] --operator NAME --reason "..."
  onedoor agency revoke-basis ID --operator NAME --reason "..."   (--operator also reads ONEDOOR_OPERATOR)
  onedoor agency bases [--agency CODE] [--purpose CODE] [--history]
  onedoor audit verify | checkpoint | flags [--citizen SUB]
  onedoor blobs sweep [--blob-dir D] [--grace 1h] [--dry-run] [--force]
  onedoor push broadcast --title T [--title-en T] [--body B] [--province CODE] [--ttl 168h] | broadcasts
Storage flags (every command): --data-dir, --postgres-dsn, --master-key-file. Each flag also reads ONEDOOR_<NAME>.
`

type usageErr struct{ msg string }

func (e *usageErr) Error() string { return e.msg }

func usageError(format string, a ...any) error { return &usageErr{fmt.Sprintf(format, a...)} }

// flagError turns a flag parsing failure into a usage error.
func flagError(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError("%v", err)
}
