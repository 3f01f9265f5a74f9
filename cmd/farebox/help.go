package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Help for every command comes from one place: its entry in commands()
// (usage line, what it does) and its own FlagSet (its flags), so the two
// cannot drift apart.

const usageHeader = `farebox sells AI by usage: a credits ledger, metering and an OpenAI-compatible gateway.

Usage: farebox <command> [arguments] [flags]
`

const usageFooter = `
Run 'farebox help <command>' or 'farebox <command> -h' for what a command does and its flags.

Management commands find their server and token in --server and --token, else
FAREBOX_SERVER and FAREBOX_ADMIN_TOKEN, else ~/.config/farebox/config.json
({"server": …, "token": …}), else http://127.0.0.1:8080 and the token in
./farebox-data/admin-token (or $FAREBOX_DATA_DIR/admin-token). They exit 1 when the
API refuses, 2 on a usage error.
`

// printUsage lists every command by group, with its summary.
func printUsage(w io.Writer) {
	fmt.Fprint(w, usageHeader)
	group := ""
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands() {
		if c.group != group {
			group = c.group
			tw.Flush()
			fmt.Fprintf(w, "\n%s:\n", group)
		}
		fmt.Fprintf(tw, "  farebox %s\t%s\n", strings.TrimSpace(c.name+" "+shortSynopsis(c.synopsis)), summary(c.about))
	}
	tw.Flush()
	fmt.Fprint(w, usageFooter)
}

// shortSynopsis keeps a usage line's positional arguments and its
// required flag, for the list: "CUSTOMER --amount N [flags]" is
// "CUSTOMER [flags]", "--to FILE [--data-dir DIR]" is "--to FILE [flags]".
func shortSynopsis(s string) string {
	f := strings.Fields(s)
	var keep []string
	for i := 0; i < len(f); i++ {
		if strings.HasPrefix(f[i], "[") {
			break
		}
		if strings.HasPrefix(f[i], "--") && len(keep) > 0 {
			break // a second flag: the list has no room for all
		}
		keep = append(keep, f[i])
	}
	return strings.Join(append(keep, "[flags]"), " ")
}

func summary(about string) string {
	first, _, _ := strings.Cut(about, "\n")
	return first
}

// help is `farebox help [command]`: the list, one command's help, or a
// group's commands (`farebox help plans`).
func help(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		printUsage(stdout)
		return nil
	}
	name := strings.Join(args, " ")
	for _, c := range commands() {
		if c.name == name {
			return showHelp(ctx, c, getenv, stdout)
		}
	}
	if isGroup(name) {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		for _, c := range commands() {
			if strings.HasPrefix(c.name, name+" ") {
				fmt.Fprintf(tw, "  farebox %s %s\t%s\n", c.name, shortSynopsis(c.synopsis), summary(c.about))
			}
		}
		tw.Flush()
		fmt.Fprintf(stdout, "\nRun 'farebox help %s <verb>' for a verb's flags.\n", name)
		return nil
	}
	return &exitError{2, fmt.Errorf("no command %q: 'farebox help' lists them", name)}
}

// showHelp has the command print its own help, which its flag parsing
// does on -h (see parseArgs). The context is already cancelled, so that a
// command that somehow ignored -h could not go on to do its work.
func showHelp(ctx context.Context, c command, getenv func(string) string, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	err := c.run(ctx, []string{"-h"}, getenv, w, w)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err == nil {
		err = errors.New("showed no help")
	}
	return fmt.Errorf("farebox %s -h: %w", c.name, err)
}

func isGroup(name string) bool {
	for _, c := range commands() {
		if strings.HasPrefix(c.name, name+" ") {
			return true
		}
	}
	return false
}

// wantsHelp reports whether args ask for help (before a "--").
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--h", "--help":
			return true
		}
	}
	return false
}

// parseFlags parses a command's flags; a usage error, and any argument
// left over, print the command's help and exit 2. -h prints it and
// returns flag.ErrHelp, which run turns into exit 0.
func parseFlags(fs *flag.FlagSet, args []string) error {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		printHelp(fs.Output(), fs)
		return &exitError{2, fmt.Errorf("%s: unexpected argument %q", fs.Name(), pos[0])}
	}
	return nil
}

// parseArgs parses flags and positional arguments in any order (`keys
// create acme --name ci` and `keys create --name ci acme`) and returns the
// positional ones. Everything after "--" is positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	out := fs.Output()
	// The flag package would print its error and a usage of its own; the
	// command's help is printed here instead, and the error once, by main.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	defer fs.SetOutput(out)
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			printHelp(out, fs)
			return nil, &exitError{2, err}
		}
		if err != nil {
			printHelp(out, fs)
			return nil, &exitError{2, fmt.Errorf("%s: %w", fs.Name(), err)}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// printHelp prints a command's usage line, what it does and its flags.
func printHelp(w io.Writer, fs *flag.FlagSet) {
	for _, c := range commands() {
		if c.name == fs.Name() {
			fmt.Fprintf(w, "Usage: farebox %s\n\n%s\n", strings.TrimSpace(c.name+" "+c.synopsis), c.about)
			break
		}
	}
	own := 0
	fs.VisitAll(func(f *flag.Flag) {
		if !settings[f.Name] {
			own++
		}
	})
	if own > 0 {
		fmt.Fprintln(w, "\nFlags:")
		printFlags(w, fs, func(name string) bool { return !settings[name] })
	}
	if fs.Lookup("server") != nil {
		fmt.Fprintln(w, "\nSettings (every management command):")
		printFlags(w, fs, func(name string) bool { return settings[name] })
	}
}

// settings are the flags every management command takes.
var settings = map[string]bool{"server": true, "token": true, "json": true}

// printFlags is flag.PrintDefaults with the double dashes the docs use,
// and without secrets: a default taken from the environment may be a
// --db URL with its password, or the admin token.
func printFlags(w io.Writer, fs *flag.FlagSet, show func(name string) bool) {
	fs.VisitAll(func(f *flag.Flag) {
		if !show(f.Name) {
			return
		}
		kind, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if kind != "" {
			line += " " + kind
		}
		def := f.DefValue
		switch f.Name {
		case "db":
			def = redact(def)
		case "token":
			def = ""
		}
		if def != "" && def != "0" && def != "false" && def != "0s" {
			if kind == "string" {
				def = fmt.Sprintf("%q", def)
			}
			usage += fmt.Sprintf(" (default %s)", def)
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
	})
}
