//go:build faiss

package main

import (
	"os"

	"github.com/spf13/cobra"

	"lookalike/bench/faiss"
)

// A binary built with -tags faiss runs the FAISS engines; the hidden
// `bench faiss-serve` is the child side of the subprocess protocol through
// which one binary drives another FAISS build (docs/faiss.md).
func init() {
	extraCommands = append(extraCommands, func(root *cobra.Command) {
		for _, c := range root.Commands() {
			if c.Name() != "bench" {
				continue
			}
			c.AddCommand(&cobra.Command{
				Use:    "faiss-serve",
				Short:  "Serve the " + faiss.NativeEngine + " engine over stdin/stdout (used by bench ivf)",
				Hidden: true,
				Args:   cobra.NoArgs,
				RunE: func(*cobra.Command, []string) error {
					return faiss.ServeEngine(os.Stdin, os.Stdout, faiss.NativeEngine)
				},
			})
		}
	})
}
