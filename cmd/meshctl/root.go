package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes: 1 for a command that ran and failed (a rejected write, etcd
// unreachable), 2 for a command line that could not be understood.
const (
	exitFailure = 1
	exitUsage   = 2
)

// run executes one meshctl command line and returns its exit code. Errors
// are printed here rather than by cobra so that a failed command always
// prints exactly one line, "meshctl: <error>", which scripts can rely on;
// only a command line that cobra could not parse is followed by the usage
// of the command, since that is when the usage helps.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetIn(stdin)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "meshctl: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
	var rerr runtimeError
	if errors.As(err, &rerr) {
		return exitFailure
	}
	fmt.Fprint(stderr, cmd.UsageString())
	return exitUsage
}

// newRootCmd builds the whole command tree. It keeps no global state, so
// tests build one per command line and run them in parallel.
func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "meshctl",
		Short: "Write and list the meshdns machine registry in etcd",
		Long: "meshctl writes and lists the meshdns machine registry kept in etcd.\n" +
			"Every write is validated before anything reaches etcd.",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	g.register(root.PersistentFlags())
	root.AddCommand(
		newOrgCmd(g),
		newAppCmd(g),
		newMachineCmd(g),
		newPeerCmd(g),
		newGatewayCmd(g),
		newRegionCmd(g),
		newLoadCmd(g),
		newStatusCmd(g),
	)
	markRuntimeErrors(root)
	return root
}

// runtimeError marks an error returned by a command's action, as opposed to
// one cobra returned while parsing the command line.
type runtimeError struct{ err error }

func (e runtimeError) Error() string { return e.err.Error() }
func (e runtimeError) Unwrap() error { return e.err }

// markRuntimeErrors wraps every action in the tree so that run can tell its
// errors from command-line errors. Cobra checks required flags after the
// pre-run hooks, so the action itself is the only reliable place to mark.
func markRuntimeErrors(c *cobra.Command) {
	if action := c.RunE; action != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if err := action(cmd, args); err != nil {
				return runtimeError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markRuntimeErrors(sub)
	}
}

// newNoun returns a command that only groups verbs. Given no verb it prints
// its help; given an unknown one it fails (cobra would print help and exit 0,
// hiding the typo from scripts).
func newNoun(use, short string, verbs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.AddCommand(verbs...)
	return c
}

// exactArgs checks the positional arguments and names them in its error,
// which cobra's ExactArgs does not.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return fmt.Errorf("%s takes %s, got %d argument(s)", cmd.CommandPath(), strings.Join(names, " "), len(args))
		}
		return nil
	}
}

// requireFlags marks flags as required. A misspelt name is a bug in
// meshctl, caught by any test that builds the command tree.
func requireFlags(c *cobra.Command, names ...string) {
	for _, n := range names {
		if err := c.MarkFlagRequired(n); err != nil {
			panic(err)
		}
	}
}
