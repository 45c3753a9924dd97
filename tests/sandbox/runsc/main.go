// Command runsc is gVisor's runsc (gvisor.dev/gvisor/runsc/cli/maincli, the
// version pinned in go.mod), unchanged but for one thing: it can hand its gofer
// to another program.
//
// runsc starts its gofer by re-executing itself (/proc/self/exe) with the
// `gofer` subcommand and has no flag for another gofer binary. When this
// binary is re-executed for `gofer` and the environment variable
// GOFER_RUNSC_GOFER names a program (a path, or a name looked up in PATH), it
// execs that program with the same argv[1:] and environment instead; the FDs
// runsc donated are inherited across exec. With GOFER_RUNSC_GOFER unset or
// empty, runsc's own gofer runs, so one binary serves both sides of a
// comparison.
//
//	GOFER_RUNSC_GOFER=$(command -v gofer) runsc --network=none run --bundle B CID
//
// Build with CGO_ENABLED=0 (with cgo, runsc's own gofer re-execs itself to
// apply capabilities).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"gvisor.dev/gvisor/runsc/cli/maincli"
	"gvisor.dev/gvisor/runsc/config"
)

// GoferEnv names the environment variable that chooses the gofer program.
const GoferEnv = "GOFER_RUNSC_GOFER"

func main() {
	if gofer := os.Getenv(GoferEnv); gofer != "" {
		if sub, globals := subcommand(os.Args[1:]); sub == "gofer" {
			execGofer(gofer, globals)
		}
	}
	maincli.Main()
}

// subcommand parses runsc's global flags the way runsc does (all flags
// registered at init on flag.CommandLine, config.RegisterFlags, and the ones
// cli.Run adds) into a throwaway FlagSet, and returns the first argument after
// them: the subcommand. "" if the flags do not parse (runsc then reports it).
func subcommand(args []string) (string, *flag.FlagSet) {
	known := flag.NewFlagSet("runsc", flag.ContinueOnError)
	config.RegisterFlags(known)
	flag.CommandLine.VisitAll(func(f *flag.Flag) {
		if known.Lookup(f.Name) == nil {
			known.Var(f.Value, f.Name, f.Usage)
		}
	})
	// Parse into placeholders, so nothing of runsc's own flag state changes.
	fs := flag.NewFlagSet("runsc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	known.VisitAll(func(f *flag.Flag) {
		b, ok := f.Value.(interface{ IsBoolFlag() bool })
		fs.Var(&placeholder{boolean: ok && b.IsBoolFlag()}, f.Name, "")
	})
	for _, name := range []string{"help", "h", "version"} {
		if fs.Lookup(name) == nil {
			fs.Var(&placeholder{boolean: true}, name, "")
		}
	}
	if err := fs.Parse(args); err != nil {
		return "", fs
	}
	return fs.Arg(0), fs
}

type placeholder struct {
	boolean bool
	value   string
}

func (p *placeholder) String() string     { return p.value }
func (p *placeholder) Set(v string) error { p.value = v; return nil }
func (p *placeholder) IsBoolFlag() bool   { return p.boolean }

// execGofer replaces this process with the chosen gofer. It only returns on
// failure, which it reports where runsc's gofer would (the gofer's stderr is
// /dev/null under runsc; --log-fd and --debug-log-fd reach runsc's logs) and
// exits 128 like runsc's util.Fatalf.
func execGofer(gofer string, globals *flag.FlagSet) {
	path, err := exec.LookPath(gofer)
	if err == nil {
		argv := append([]string{path}, os.Args[1:]...)
		err = syscall.Exec(path, argv, os.Environ())
	}
	msg := fmt.Sprintf("runsc: %s=%q: cannot exec the gofer: %v\n", GoferEnv, gofer, err)
	os.Stderr.WriteString(msg)
	for _, name := range []string{"log-fd", "debug-log-fd"} {
		if f := globals.Lookup(name); f != nil {
			if fd, err := strconv.Atoi(f.Value.String()); err == nil && fd > 2 {
				syscall.Write(fd, []byte(msg))
			}
		}
	}
	os.Exit(128)
}
