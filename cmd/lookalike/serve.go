package main

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"lookalike/cuda"
	"lookalike/embed"
	"lookalike/node"
	"lookalike/node/membership"
)

func init() {
	extraCommands = append(extraCommands, func(root *cobra.Command) { root.AddCommand(newServeCmd()) })
}

func newServeCmd() *cobra.Command {
	var (
		o         node.ServerOptions
		config    string
		quiet     bool
		gpu       bool
		gpuMemory int64
		debugAddr string
		models    []string
		gossipKey string
	)
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run a node: with no flags a one-node cluster on 127.0.0.1:8080 with its data in ./data",
		Long: `Run a lookalike node. With no flags it is a complete one-node cluster:
HTTP API on 127.0.0.1:8080, Raft on 127.0.0.1:7947 bootstrapped with this
node as the only voter, everything durable under ./data.

Every flag can also be set with an environment variable LOOKALIKE_<FLAG>
(upper case, '-' as '_': LOOKALIKE_API_KEY) or a line "flag = value" in the
--config file; the command line wins over the environment, which wins over
the file. SIGTERM or Ctrl-C shuts down gracefully.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := applyEnvAndConfig(c.Flags(), config); err != nil {
				return usageError{err}
			}
			level := slog.LevelInfo
			if quiet {
				level = slog.LevelWarn
			}
			if gossipKey != "" {
				k, err := membership.ParseKey(gossipKey)
				if err != nil {
					return usageError{fmt.Errorf("--gossip-key: %w", err)}
				}
				o.Cluster.GossipKey = k
			}
			o.Logger = slog.New(slog.NewTextHandler(c.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			o.RaftLog = c.ErrOrStderr()
			if gpu {
				sc, err := cuda.NewScanner(cuda.Options{MemoryBudget: gpuMemory})
				if err != nil {
					return fmt.Errorf("--gpu: %w", err)
				}
				defer sc.Close()
				o.Node.Scanner = sc
			}
			ms, err := openModels(models, o.API.Limits.MaxImageBytes, o.Logger)
			if err != nil {
				return err
			}
			defer ms.Close()
			o.Node.Embedders = ms.embedders
			if debugAddr != "" {
				stop, err := serveDebug(c.Context(), debugAddr, o.Logger)
				if err != nil {
					return err
				}
				defer stop()
			}
			return node.Run(c.Context(), o, nil)
		},
	}
	f := c.Flags()
	f.StringVar(&config, "config", "", "config file of `flag = value` lines")
	f.BoolVar(&gpu, "gpu", false, "scan lists on the GPU (a binary built with -tags cuda: make cuda)")
	f.Int64Var(&gpuMemory, "gpu-memory", 0, "GPU memory budget in bytes for resident lists (default: 80% of free memory less 256 MiB); what does not fit is scanned on the CPU")
	f.StringVar(&o.DataDir, "data", "data", "data directory")
	f.StringVar(&o.HTTPAddr, "http", "127.0.0.1:8080", "HTTP API listen address")
	f.StringVar(&o.RaftAddr, "raft", "127.0.0.1:7947", "Raft listen address")
	f.StringVar(&o.Advertise, "advertise", "", "Raft address other nodes dial (default: --raft)")
	f.StringVar(&o.NodeID, "node-id", "", "node id (default: persisted in the data directory, generated on first start)")
	f.StringVar(&o.API.APIKey, "api-key", "", "key required by writes and admin calls (Authorization: Bearer KEY)")
	f.StringVar(&o.API.ReadKey, "read-key", "", "key required by searches and reads (default: reads are open)")
	f.StringVar(&o.TLSCert, "tls-cert", "", "TLS certificate file (with --tls-key: serve HTTPS)")
	f.StringVar(&o.TLSCA, "tls-ca", "", "PEM file of the CA certificates that sign the other nodes' certificates (a cluster over HTTPS; default: the system's roots)")
	f.StringVar(&o.TLSKey, "tls-key", "", "TLS key file")
	f.Int64Var(&o.API.Limits.MaxBodyBytes, "max-body-bytes", 64<<20, "largest request body")
	f.IntVar(&o.API.Limits.MaxItems, "max-items", 10_000, "most items in one insert")
	f.IntVar(&o.API.Limits.MaxMetaBytes, "max-meta-bytes", 64<<10, "largest metadata of one item")
	f.IntVar(&o.API.Limits.MaxImageBytes, "max-image-bytes", 32<<20, "largest image file of an upload or a search")
	f.IntVar(&o.API.Limits.MaxImages, "max-images", 64, "most image files in one upload")
	f.StringArrayVar(&models, "model", nil, "image model directory (model.json + ONNX file), repeatable; default: the default model in the cache ($LOOKALIKE_CACHE/models/"+embed.DefaultModel+") when present, loaded in the background; \"none\": no image model")
	f.IntVar(&o.API.MaxWrites, "max-writes", 16, "write requests running at once")
	f.IntVar(&o.API.QueueWrites, "queue-writes", 64, "write requests waiting beyond those (then 429)")
	f.IntVar(&o.API.MaxReads, "max-reads", 256, "read requests running at once")
	f.IntVar(&o.API.QueueReads, "queue-reads", 1024, "read requests waiting beyond those (then 429)")
	f.DurationVar(&o.API.WriteWait, "write-wait", 10*time.Second, "longest a write request waits in its queue (then 429)")
	f.DurationVar(&o.API.ReadWait, "read-wait", time.Second, "longest a read request waits in its queue (then 429)")
	f.IntVar(&o.Node.MaxScans, "max-scans", 0, "scans (the CPU-heavy part of a search) running at once; more wait in order (default 2 × the cores Go uses)")
	f.DurationVar(&o.Node.ScanWait, "scan-wait", time.Second, "longest a scan waits for a slot (then 429, or another replica within the search's budget)")
	f.Float64Var(&o.Node.ShedAbove, "shed-above", 32, "refuse new searches (429) while Go's run queue holds more than this many goroutines per processor, until it is below half (negative: never)")
	f.IntVar(&o.Node.DefaultNProbe, "nprobe", 16, "nprobe of searches that give none")
	f.IntVar(&o.Node.AutoTrainAt, "auto-train-at", 39*256, "count at which an nlist-auto collection trains by itself (negative: never; a fixed nlist trains at 39×nlist)")
	f.IntVar(&o.Node.SaveEvery, "save-every", 100_000, "writes to a trained collection between background index saves (negative: only after training and at shutdown)")
	f.StringVar(&o.Cluster.Gossip, "gossip", "", "gossip (memberlist) address, host:port: run as one node of a cluster (default: a one-node cluster, no gossip)")
	f.StringSliceVar(&o.Cluster.Join, "join", nil, "gossip addresses of nodes to join, host:port[,host:port] (retried until one answers)")
	f.IntVar(&o.Cluster.BootstrapExpect, "bootstrap-expect", 0, "found a new cluster once this many nodes are seen (give every founding node the same N; the lowest node id bootstraps Raft)")
	f.BoolVar(&o.Cluster.Voter, "voter", false, "be a Raft voter even when the cluster has three (by default the first three nodes vote, later ones do not)")
	f.DurationVar(&o.Cluster.DeadVoterGrace, "dead-voter-grace", 30*time.Second, "how long a voter may be dead before the leader replaces it with a live non-voter and removes it from Raft (negative: never)")
	f.DurationVar(&o.Cluster.RestoreDelay, "restore-delay", 30*time.Second, "how long a shard that lost a replica waits for that node to come back and catch up before it is copied to another node (negative: copy at once)")
	f.DurationVar(&o.Cluster.DirSweep, "dir-sweep", time.Minute, "how often to sweep the id directory partitions this node leads for ids left with two copies (a gateway that died between an upsert's write and its eviction) and lists that hold no copy (negative: never)")
	f.StringVar(&gossipKey, "gossip-key", "", "encrypt gossip with this key: base64 of 16, 24 or 32 bytes, the same on every node (e.g. head -c32 /dev/urandom | base64)")
	f.BoolVar(&quiet, "quiet", false, "log warnings and errors only")
	f.StringVar(&debugAddr, "debug-addr", "", "serve Go's profiler (/debug/pprof) on this address (off by default; no keys: keep it on loopback)")
	return c
}

// envName is the environment variable of a flag.
func envName(flag string) string {
	return "LOOKALIKE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnvAndConfig sets the flags not given on the command line from the
// environment, then from the config file.
func applyEnvAndConfig(fs *pflag.FlagSet, config string) error {
	if config == "" {
		config = os.Getenv(envName("config"))
	}
	file := map[string]string{}
	if config != "" {
		var err error
		if file, err = readConfig(config); err != nil {
			return err
		}
		for k := range file {
			if fs.Lookup(k) == nil || k == "config" {
				return fmt.Errorf("config %s: unknown setting %q", config, k)
			}
		}
	}
	var errs []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "config" {
			return
		}
		v, ok := os.LookupEnv(envName(f.Name))
		src := envName(f.Name)
		if !ok {
			v, ok = file[f.Name]
			src = config + ": " + f.Name
		}
		if ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", src, err))
			}
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// readConfig reads "key = value" lines; '#' starts a comment.
func readConfig(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("config %s:%d: want flag = value", path, ln)
		}
		k = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(k), "--"))
		out[k] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	return out, sc.Err()
}
