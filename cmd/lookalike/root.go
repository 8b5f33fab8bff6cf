package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// run executes the command line args and returns the exit code: 0 on
// success, 1 on a failure, 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "lookalike:", err)
		if _, ok := err.(usageError); ok {
			return 2
		}
		return 1
	}
	return 0
}

// usageError marks errors in the command line itself.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// extraCommands are added by files behind build tags (faiss, cuda).
var extraCommands []func(root *cobra.Command)

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "lookalike",
		Short:         "Search by image: embedding, IVF-SQ8 index, cluster, web page, benchmarks",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	root.AddCommand(newBenchCmd(), newVersionCmd())
	for _, add := range extraCommands {
		add(root)
	}
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and build settings",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			v, tags := "(devel)", ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				if bi.Main.Version != "" {
					v = bi.Main.Version
				}
				for _, s := range bi.Settings {
					if s.Key == "-tags" {
						tags = s.Value
					}
				}
			}
			fmt.Fprintf(c.OutOrStdout(), "lookalike %s", v)
			if tags != "" {
				fmt.Fprintf(c.OutOrStdout(), " (tags %s)", tags)
			}
			fmt.Fprintln(c.OutOrStdout())
			return nil
		},
	}
}
