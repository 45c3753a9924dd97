// Command flags prints runsc's global flags as ../main.go's subcommand()
// registers them (config.RegisterFlags, the flags runsc's packages register
// on flag.CommandLine, and help, h, version), one per line: "bool NAME" for
// a boolean flag (given as -NAME or -NAME=VALUE only), "value NAME" for one
// that takes a value (-NAME=VALUE or -NAME VALUE). tests/sandbox/
// test_runsc_flags.py checks gofer's copy (src/gofer/runsc_flags.py) with it.
package main

import (
	"flag"
	"fmt"

	_ "gvisor.dev/gvisor/runsc/cli/maincli" // links runsc's packages, their flags with them
	"gvisor.dev/gvisor/runsc/config"
)

func main() {
	known := flag.NewFlagSet("runsc", flag.ContinueOnError)
	config.RegisterFlags(known)
	flag.CommandLine.VisitAll(func(f *flag.Flag) {
		if known.Lookup(f.Name) == nil {
			known.Var(f.Value, f.Name, f.Usage)
		}
	})
	for _, name := range []string{"help", "h", "version"} {
		if known.Lookup(name) == nil {
			known.Bool(name, false, "")
		}
	}
	known.VisitAll(func(f *flag.Flag) {
		kind := "value"
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			kind = "bool"
		}
		fmt.Println(kind, f.Name)
	})
}
