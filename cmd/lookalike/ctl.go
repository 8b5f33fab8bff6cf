package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"lookalike/proto"
)

func init() {
	extraCommands = append(extraCommands, func(root *cobra.Command) { root.AddCommand(newCtlCmd()) })
}

// ctlClient talks HTTP API v1 to a node.
type ctlClient struct {
	base string
	key  string
	hc   *http.Client
}

func (c *ctlClient) do(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", proto.JSONContentType)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e proto.ErrorBody
		if json.Unmarshal(b, &e) == nil && e.Error != nil {
			return fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

func newCtlCmd() *cobra.Command {
	cl := &ctlClient{hc: &http.Client{Timeout: 60 * time.Second}}
	var addr string
	c := &cobra.Command{
		Use:   "ctl",
		Short: "Administer a running node over its HTTP API",
		Long: `Administer a running node over its HTTP API. --addr (LOOKALIKE_ADDR) is the
node's URL, --key (LOOKALIKE_API_KEY) the key for admin calls.`,
		PersistentPreRunE: func(c *cobra.Command, _ []string) error {
			if !c.Flags().Changed("addr") {
				if v := os.Getenv("LOOKALIKE_ADDR"); v != "" {
					addr = v
				}
			}
			if !c.Flags().Changed("key") {
				cl.key = os.Getenv("LOOKALIKE_API_KEY")
			}
			if !strings.Contains(addr, "://") {
				addr = "http://" + addr
			}
			u, err := url.Parse(addr)
			if err != nil || u.Host == "" {
				return usageError{fmt.Errorf("--addr %q: want host:port or a URL", addr)}
			}
			cl.base = strings.TrimRight(u.String(), "/")
			return nil
		},
	}
	c.PersistentFlags().StringVar(&addr, "addr", "127.0.0.1:8080", "node address (host:port or URL)")
	c.PersistentFlags().StringVar(&cl.key, "key", "", "API key")

	status := &cobra.Command{
		Use: "status", Short: "Show the cluster: leader, nodes, shards", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var cu proto.Cluster
			if err := cl.do("GET", "/v1/cluster", nil, &cu); err != nil {
				return err
			}
			w := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			leader := cu.Leader
			if leader == "" {
				leader = "(none)"
			}
			var voters, nonvoters []string
			fmt.Fprintf(w, "leader\t%s\n\nNODE\tHTTP\tRAFT\tGOSSIP\tSTATE\tRAFT ROLE\n", leader)
			for _, n := range cu.Nodes {
				role := n.Raft
				switch {
				case role == "" && n.Voter:
					role = "voter"
				case role == "":
					role = "-"
				}
				if n.ID == cu.Leader {
					role += " (leader)"
				}
				switch n.Raft {
				case "voter":
					voters = append(voters, n.ID)
				case "nonvoter":
					nonvoters = append(nonvoters, n.ID)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", n.ID, n.Addr, dash(n.RaftAddr), dash(n.GossipAddr), n.State, role)
			}
			if len(voters)+len(nonvoters) > 0 {
				fmt.Fprintf(w, "\nvoters\t%s\nnon-voters\t%s\n", dash(strings.Join(voters, ",")), dash(strings.Join(nonvoters, ",")))
			}
			// Backups are synchronous: an in-sync replica has no lag. A
			// joining one is being copied to (or caught up) and serves
			// nothing yet; an away one is behind, waited for.
			// A buffer shard and an id directory partition hold no lists.
			fmt.Fprintf(w, "\nSHARD\tEPOCH\tLISTS\tPRIMARY\tIN SYNC\tJOINING (copying)\tAWAY (behind)\n")
			for _, s := range cu.Shards {
				lists := "-"
				if s.Lists > 0 {
					lists = strconv.Itoa(s.Lists)
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", s.Shard, s.Epoch, lists, s.Primary, dash(strings.Join(s.InSync, ",")),
					dash(strings.Join(s.Joining, ",")), dash(strings.Join(s.Away, ",")))
			}
			return w.Flush()
		},
	}
	collections := &cobra.Command{
		Use: "collections", Short: "List the collections", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var cs proto.Collections
			if err := cl.do("GET", "/v1/collections", nil, &cs); err != nil {
				return err
			}
			w := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "NAME\tDIM\tMETRIC\tNLIST\tCOUNT\tSTATE\tEPOCH\n")
			for _, x := range cs.Collections {
				nl := x.NList.String()
				if x.TrainedNList > 0 {
					nl = fmt.Sprintf("%d", x.TrainedNList)
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%d\t%s\t%d\n", x.Name, x.Dim, x.Metric, nl, x.Count, x.State, x.Epoch)
			}
			return w.Flush()
		},
	}
	var cc proto.CreateCollection
	var nlist string
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a collection", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cc.Name = args[0]
			if err := cc.NList.UnmarshalJSON([]byte(quoteAuto(nlist))); err != nil {
				return usageError{fmt.Errorf("--nlist %q: %v", nlist, err)}
			}
			var out proto.Collection
			if err := cl.do("POST", "/v1/collections", cc, &out); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "created %s (dim %d, %s, nlist %s)\n", out.Name, out.Dim, out.Metric, out.NList)
			return nil
		},
	}
	create.Flags().IntVar(&cc.Dim, "dim", 0, "vector dimension")
	create.Flags().StringVar((*string)(&cc.Metric), "metric", "l2", "l2, ip or cosine")
	create.Flags().StringVar(&nlist, "nlist", "auto", "lists of the trained index, or auto")
	create.Flags().IntVar(&cc.Replicas, "replicas", 1, "copies of each shard")
	drop := &cobra.Command{
		Use: "drop NAME", Short: "Drop a collection and its data", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := cl.do("DELETE", "/v1/collections/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "dropped %s\n", args[0])
			return nil
		},
	}
	var trainNList string
	train := &cobra.Command{
		Use: "train NAME", Short: "Train a collection now (k-means in the background)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var t proto.Train
			if err := t.NList.UnmarshalJSON([]byte(quoteAuto(trainNList))); err != nil {
				return usageError{fmt.Errorf("--nlist %q: %v", trainNList, err)}
			}
			var out proto.TrainAccepted
			if err := cl.do("POST", "/v1/collections/"+url.PathEscape(args[0])+"/train", t, &out); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "training %s: commits epoch %d\n", out.Collection, out.Epoch)
			return nil
		},
	}
	train.Flags().StringVar(&trainNList, "nlist", "auto", "lists (auto: the collection's nlist, or chosen from the count)")
	c.AddCommand(status, collections, create, drop, train)
	return c
}

func quoteAuto(s string) string {
	if s == "auto" {
		return `"auto"`
	}
	return s
}

// dash stands in for an empty field of a table.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
