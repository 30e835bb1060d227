// Command coedit is the coedit server binary: `coedit serve` runs a node
// (the default when no subcommand is given). Run `coedit help` for the
// list of subcommands and `coedit serve -h` for serve's flags.
//
// Each subcommand is a function returning an error, in its own file
// (serve.go: runServe, replay.go: runReplay), dispatched from run's switch
// below; a usageError makes the exit status 2. Configuration
// (flags, COEDIT_* environment variables) and signal handling live only in
// this package.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is an error in the command line; run exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// run dispatches to a subcommand and returns the process exit status.
func run(args []string, stdout, stderr io.Writer) int {
	cmd, rest := "serve", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, rest = args[0], args[1:]
	}
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		cmd = "help" // the commands, not only serve's flags
	}
	var err error
	switch cmd {
	case "serve":
		err = runServe(rest)
	case "replay":
		err = runReplay(rest, stdout, stderr)
	case "token":
		err = runToken(rest, os.Getenv, stdout, stderr)
	case "bench":
		err = runBench(rest, stdout, stderr)
	case "help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "coedit: unknown command %q\n\n", cmd)
		usage(stderr)
		return 2
	}
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "coedit:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "coedit:", err)
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: coedit [command] [flags]

Commands:
  serve   run a coedit node (the default)
  replay  replay edit logs and editing traces, and check their final text
  token   print a signed access token (for a server run with --auth-secret)
  bench   drive ShareDB-protocol servers with load and measure them
  help    print this help

Run "coedit <command> -h" for a command's flags ("coedit serve -h" for the
server's).
`)
}

// parseFlags parses args into fs. With -h it prints fs's usage to out and
// returns flag.ErrHelp. A bad flag is a usageError naming the command
// (what), with a pointer to -h, and no usage text: run prints it once,
// where the flag package printed the error, forty lines of flags, then
// run the error again.
func parseFlags(fs *flag.FlagSet, args []string, what string, out io.Writer) error {
	usage := fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = usage
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		if usage != nil {
			usage()
		} else {
			fmt.Fprintf(out, "Usage of %s:\n", fs.Name())
			fs.PrintDefaults()
		}
		return err
	}
	return &usageError{fmt.Sprintf("%s%v (%s -h lists the flags)", what, err, fs.Name())}
}
