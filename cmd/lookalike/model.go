package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"lookalike/embed"
)

// The model command is added through extraCommands so that this file is
// the only one that knows about it.
func init() {
	extraCommands = append(extraCommands, func(root *cobra.Command) { root.AddCommand(newModelCmd()) })
}

func newModelCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "model",
		Short: "Fetch, convert and inspect the image models that embed images",
	}
	c.AddCommand(newModelFetchCmd(), newModelListCmd(), newModelInfoCmd())
	return c
}

// modelFetch is what `model fetch` does, separate from its flags.
type modelFetch struct {
	Dir   string // models directory: one subdirectory per model
	Names []string
	From  string // the nsfwjs tarball; "" fetches it with npm into the cache
	Cache string // where a fetched tarball is kept (CacheDir()/npm)
	Out   io.Writer
}

func newModelFetchCmd() *cobra.Command {
	var (
		f    modelFetch
		name string
	)
	c := &cobra.Command{
		Use:   "fetch",
		Short: "Fetch the default model (npm " + embed.NSFWJSPackage + ") and convert it to ONNX",
		Long: `Fetch the default model and convert it to ONNX with lookalike's own TF.js
converter: ` + "`npm pack " + embed.NSFWJSPackage + "`" + ` (kept in the cache), then the
mobilenet_v2_mid graph in it becomes DIR/NAME/model.onnx and model.json.

Two models come out of it: ` + embed.DefaultModel + ` (NHWC input in [0, 1]) and
` + embed.DefaultModel + `_nchw (the same network taking NCHW input normalised
with ImageNet's mean and std, as most ONNX models do). Each is written
atomically and checked against its pinned SHA-256; a model already present
and intact is left alone, so running this again does nothing.`,
		Example: `  lookalike model fetch
  lookalike model fetch --name mobilenet_v2_mid --dir ./models
  lookalike model fetch --from ./nsfwjs-4.4.0.tgz`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			switch name {
			case "", "all":
				for _, m := range embed.NSFWJSModels {
					f.Names = append(f.Names, m.Config.Name)
				}
			default:
				if _, ok := embed.NSFWJSModel(name); !ok {
					return usageError{fmt.Errorf("--name %q: the converter makes %s", name, convertedNames())}
				}
				f.Names = []string{name}
			}
			if f.Dir == "" {
				f.Dir = embed.ModelsDir()
			}
			f.Cache = filepath.Join(embed.CacheDir(), "npm")
			f.Out = c.OutOrStdout()
			return f.run(c.Context())
		},
	}
	c.Flags().StringVar(&f.Dir, "dir", "", "models directory; each model goes into DIR/NAME (default $LOOKALIKE_CACHE/models or ~/.cache/lookalike/models)")
	c.Flags().StringVar(&name, "name", "all", "which model to write: "+convertedNames()+" or all")
	c.Flags().StringVar(&f.From, "from", "", "convert this "+embed.NSFWJSTarball+" instead of fetching it with npm")
	return c
}

func convertedNames() string {
	var s []string
	for _, m := range embed.NSFWJSModels {
		s = append(s, m.Config.Name)
	}
	return strings.Join(s, ", ")
}

func (f *modelFetch) run(ctx context.Context) error {
	var todo []embed.ConvertedModel
	for _, name := range f.Names {
		m, _ := embed.NSFWJSModel(name)
		dir := filepath.Join(f.Dir, name)
		if err := embed.CheckModelFiles(dir, m); err == nil {
			fmt.Fprintf(f.Out, "%s: already present in %s (sha256 %s)\n", name, dir, m.Hash)
			continue
		} else if !errors.Is(err, embed.ErrNoModel) {
			fmt.Fprintf(f.Out, "%s: replacing %s: %v\n", name, dir, err)
		}
		todo = append(todo, m)
	}
	if len(todo) == 0 {
		return nil
	}
	tarball, err := f.tarball(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	g, err := embed.NSFWJSGraph(tarball)
	if err != nil {
		return fmt.Errorf("model fetch: %w", err)
	}
	for _, m := range todo {
		b, err := embed.ConvertNSFWJS(g, m)
		if err != nil {
			return fmt.Errorf("model fetch: convert %s: %w", m.Config.Name, err)
		}
		if h := embed.Hash(b); h != m.Hash {
			return fmt.Errorf("model fetch: %s converted to SHA-256 %s, want %s: the converter is not the one the pinned hash was made with", m.Config.Name, h, m.Hash)
		}
		dir := filepath.Join(f.Dir, m.Config.Name)
		if err := embed.WriteModel(dir, m.Config, b); err != nil {
			return fmt.Errorf("model fetch: %w", err)
		}
		fmt.Fprintf(f.Out, "%s: converted %s to %s (%.1f MB, %d-d %s input, sha256 %s) in %s\n",
			m.Config.Name, embed.NSFWJSPackage, dir, float64(len(b))/1e6, m.Config.Dim, m.Config.Layout, m.Hash,
			time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// tarball returns the nsfwjs tarball's bytes: --from, else the cached
// copy, else a fresh `npm pack` whose result is cached. Its hash is checked
// by embed.NSFWJSGraph; a cached copy with the wrong hash is fetched again.
func (f *modelFetch) tarball(ctx context.Context) ([]byte, error) {
	if f.From != "" {
		b, err := os.ReadFile(f.From)
		if err != nil {
			return nil, fmt.Errorf("model fetch: %w", err)
		}
		return b, nil
	}
	cached := filepath.Join(f.Cache, embed.NSFWJSTarball)
	if b, err := os.ReadFile(cached); err == nil && sha256Hex(b) == embed.NSFWJSSHA256 {
		fmt.Fprintf(f.Out, "using %s\n", cached)
		return b, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("model fetch: %w", err)
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return nil, fmt.Errorf("model fetch: npm is not installed (apt-get install npm), or give --from %s", embed.NSFWJSTarball)
	}
	tmp, err := os.MkdirTemp("", "lookalike-npm-")
	if err != nil {
		return nil, fmt.Errorf("model fetch: %w", err)
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(f.Out, "fetching %s with npm pack (about 25 MB)\n", embed.NSFWJSPackage)
	cmd := exec.CommandContext(ctx, npm, "pack", "--silent", embed.NSFWJSPackage)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("model fetch: npm pack %s: %v: %s", embed.NSFWJSPackage, err, strings.TrimSpace(string(out)))
	}
	b, err := os.ReadFile(filepath.Join(tmp, embed.NSFWJSTarball))
	if err != nil {
		return nil, fmt.Errorf("model fetch: npm pack did not write %s: %w", embed.NSFWJSTarball, err)
	}
	if h := sha256Hex(b); h != embed.NSFWJSSHA256 {
		return nil, fmt.Errorf("model fetch: npm gave %s with SHA-256 %s, want %s", embed.NSFWJSTarball, h, embed.NSFWJSSHA256)
	}
	if err := os.MkdirAll(f.Cache, 0o755); err != nil {
		return nil, fmt.Errorf("model fetch: %w", err)
	}
	part := cached + ".part"
	if err := os.WriteFile(part, b, 0o644); err != nil {
		return nil, fmt.Errorf("model fetch: %w", err)
	}
	if err := os.Rename(part, cached); err != nil {
		return nil, fmt.Errorf("model fetch: %w", err)
	}
	return b, nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func newModelListCmd() *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "list",
		Short: "List the models in the models directory",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if dir == "" {
				dir = embed.ModelsDir()
			}
			ents, err := os.ReadDir(dir)
			if errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(c.OutOrStdout(), "no models in %s (run `lookalike model fetch`)\n", dir)
				return nil
			}
			if err != nil {
				return err
			}
			w := c.OutOrStdout()
			for _, e := range ents {
				if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
					continue
				}
				cfg, err := embed.LoadConfig(filepath.Join(dir, e.Name()))
				if err != nil {
					fmt.Fprintf(w, "%-24s  unusable: %v\n", e.Name(), err)
					continue
				}
				fmt.Fprintf(w, "%-24s  %s %d px, %d-d, %s\n", cfg.Name, cfg.Layout, cfg.Size, cfg.Dim, filepath.Join(dir, e.Name()))
			}
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "models directory (default $LOOKALIKE_CACHE/models or ~/.cache/lookalike/models)")
	return c
}

func newModelInfoCmd() *cobra.Command {
	var (
		o    embed.ModelOptions
		dir  string
		jsn  bool
		load bool
	)
	c := &cobra.Command{
		Use:   "info NAME|DIR",
		Short: "Show a model's config and hash; with --load, load it into ONNX Runtime to check it",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			p := args[0]
			if !strings.ContainsRune(p, filepath.Separator) {
				if dir == "" {
					dir = embed.ModelsDir()
				}
				p = filepath.Join(dir, p)
			}
			cfg, err := embed.LoadConfig(p)
			if err != nil {
				return err
			}
			info := struct {
				Dir     string       `json:"dir"`
				Config  embed.Config `json:"config"`
				SHA256  string       `json:"sha256"`
				Runtime string       `json:"onnxruntime,omitempty"`
			}{Dir: p, Config: cfg}
			if load {
				m, err := embed.Open(p, o)
				if err != nil {
					return err
				}
				info.SHA256 = m.Hash()
				info.Runtime = embed.RuntimeVersion()
				m.Close()
			} else {
				b, err := os.ReadFile(filepath.Join(p, cfg.File))
				if err != nil {
					return fmt.Errorf("%w: %v", embed.ErrNoModel, err)
				}
				info.SHA256 = embed.Hash(b)
			}
			w := c.OutOrStdout()
			if jsn {
				e := json.NewEncoder(w)
				e.SetIndent("", "  ")
				return e.Encode(info)
			}
			fmt.Fprintf(w, "model    %s\ndir      %s\nfile     %s (sha256 %s)\ninput    %q %s [N %s] size %d, mean %v, std %v\noutput   %q [N %d]\n",
				cfg.Name, p, cfg.File, info.SHA256, cfg.Input, cfg.Layout, layoutDims(cfg), cfg.Size, cfg.Mean, cfg.Std, cfg.Output, cfg.Dim)
			if info.Runtime != "" {
				fmt.Fprintf(w, "loaded   by ONNX Runtime %s\n", info.Runtime)
			}
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "models directory for a NAME (default $LOOKALIKE_CACHE/models or ~/.cache/lookalike/models)")
	c.Flags().BoolVar(&jsn, "json", false, "print JSON")
	c.Flags().BoolVar(&load, "load", false, "load the model into ONNX Runtime, checking its input and output against model.json")
	c.Flags().StringVar(&o.Library, "ort-lib", "", "ONNX Runtime library (default $LOOKALIKE_ORT_LIB or the cache's ort/libonnxruntime.so.1)")
	return c
}

func layoutDims(c embed.Config) string {
	if c.Layout == embed.NCHW {
		return fmt.Sprintf("3 %d %d", c.Size, c.Size)
	}
	return fmt.Sprintf("%d %d 3", c.Size, c.Size)
}
