package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"lookalike/coordinator"
	"lookalike/internal/fsutil"
	"lookalike/node/store"
)

// ServerOptions configure a server process (lookalike serve): a node that
// is, on its own, a complete one-node cluster. The zero value of each
// field means its default, as documented on the field.
type ServerOptions struct {
	// DataDir holds everything durable: node-id, raft/, store/. Default
	// "data".
	DataDir string
	// HTTPAddr is the API's listen address. Default 127.0.0.1:8080 (bind
	// other interfaces explicitly).
	HTTPAddr string
	// RaftAddr is Raft's listen address. Default 127.0.0.1:7947.
	RaftAddr string
	// Advertise is the Raft address other nodes dial. Default RaftAddr.
	Advertise string
	// NodeID names the node. Default: the one persisted in DataDir, or a
	// generated one on first start, which is then persisted. A NodeID that
	// disagrees with the persisted one is an error.
	NodeID string
	// TLSCert and TLSKey, both set, serve HTTPS.
	TLSCert, TLSKey string
	// TLSCA is a PEM file of the certificates that sign the other nodes'
	// (a cluster served over HTTPS calls its peers with it); empty: the
	// system's roots.
	TLSCA string
	// API configures the HTTP API (keys, limits, queues).
	API APIOptions
	// Node configures the runtime; its NodeID and Logger are set by Run.
	Node Options
	// Store configures Pebble.
	Store store.Options
	// ShutdownTimeout bounds the wait for in-flight requests on shutdown.
	// Default 30 s.
	ShutdownTimeout time.Duration
	// Logger receives the server's messages. Default: text to stderr.
	Logger *slog.Logger
	// RaftLog receives Raft's log. Default: stderr at warn level.
	RaftLog io.Writer
	// Cluster makes the server one node of a cluster (gossip, bootstrap,
	// joins; cluster.go). Zero: a one-node cluster.
	Cluster ClusterOptions
}

// EnsureDefaults fills zero fields with their defaults.
func (o *ServerOptions) EnsureDefaults() {
	if o.DataDir == "" {
		o.DataDir = "data"
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = "127.0.0.1:8080"
	}
	if o.RaftAddr == "" {
		o.RaftAddr = coordinator.DefaultRaftAddr
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if o.RaftLog == nil {
		o.RaftLog = os.Stderr
	}
	o.API.EnsureDefaults()
}

// Validate reports every problem with o at once.
func (o *ServerOptions) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(o.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("http address %q: %v", o.HTTPAddr, err))
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		errs = append(errs, errors.New("TLS needs both a certificate and a key"))
	}
	if o.TLSCA != "" && o.TLSCert == "" {
		errs = append(errs, errors.New("--tls-ca is for a node that serves TLS (--tls-cert, --tls-key)"))
	}
	if o.NodeID != "" {
		if err := validNodeID(o.NodeID); err != nil {
			errs = append(errs, err)
		}
	}
	if err := o.API.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.ShutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout %v", o.ShutdownTimeout))
	}
	errs = append(errs, o.Cluster.validate()...)
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("node: invalid server options: %w", errors.Join(errs...))
}

func validNodeID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("node id %q: want 1..64 bytes", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("node id %q: use letters, digits, '-', '_' and '.'", id)
		}
	}
	return nil
}

// nodeIDFile is the file in the data directory that keeps the node id.
const nodeIDFile = "node-id"

// resolveNodeID returns the persisted node id, or persists want (or a
// generated id) on first start.
func resolveNodeID(dir, want string) (string, error) {
	p := filepath.Join(dir, nodeIDFile)
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		have := strings.TrimSpace(string(b))
		if err := validNodeID(have); err != nil {
			return "", fmt.Errorf("node: %s: %w", p, err)
		}
		if want != "" && want != have {
			return "", fmt.Errorf("node: --node-id %q, but %s says %q (a node keeps its id)", want, p, have)
		}
		return have, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("node: %w", err)
	}
	id := want
	if id == "" {
		var r [4]byte
		_, _ = rand.Read(r[:])
		id = "node-" + hex.EncodeToString(r[:])
	}
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return "", fmt.Errorf("node: %w", err)
	}
	_, err = f.WriteString(id + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err == nil {
		err = fsutil.SyncDir(dir)
	}
	if err != nil {
		return "", fmt.Errorf("node: persist node id: %w", err)
	}
	return id, nil
}

// Run serves until ctx ends (SIGTERM), then shuts down gracefully: it
// stops accepting, lets in-flight requests finish (up to
// ShutdownTimeout), persists the indexes, and closes the store and Raft.
// ready, when not nil, is called with the HTTP address once serving.
func Run(ctx context.Context, opts ServerOptions, ready func(httpAddr string)) (err error) {
	o := opts
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return err
	}
	log := o.Logger
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return fmt.Errorf("node: data directory: %w", err)
	}
	id, err := resolveNodeID(o.DataDir, o.NodeID)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.HTTPAddr)
	if err != nil {
		return fmt.Errorf("node: http: %w", err)
	}
	defer ln.Close()
	httpAddr := ln.Addr().String()

	openCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	copts := coordinator.Options{
		NodeID: id, DataDir: o.DataDir, RaftAddr: o.RaftAddr, Advertise: o.Advertise, HTTPAddr: httpAddr,
		Bootstrap: true, LogOutput: o.RaftLog, LogLevel: "warn",
		// A lone voter waits one heartbeat timeout before it elects
		// itself at every start: keep that short (raft's default is 1 s).
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
		LeaderLeaseTimeout: 200 * time.Millisecond,
	}
	cr := &clusterRuntime{o: o.Cluster, log: log, id: id, nudge: make(chan struct{}, 1), stop: make(chan struct{})}
	if o.Cluster.enabled() {
		// Bootstrap follows the members gossip finds (cluster.go).
		copts.Bootstrap = false
		copts.HeartbeatTimeout, copts.ElectionTimeout, copts.LeaderLeaseTimeout = clusterHeartbeat, clusterElection, clusterLeaderLease
		peerTLS, err := peerTLSConfig(o.TLSCert != "", o.TLSCA)
		if err != nil {
			return err
		}
		cr.tls = peerTLS
		copts.Forward = clusterForwarder(cr, peerTLS, o.API.APIKey)
	}
	cs, err := coordinator.Open(openCtx, copts)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := cs.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	st, err := OpenPebble(filepath.Join(o.DataDir, "store"), o.Store)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	no := o.Node
	no.NodeID, no.Logger = id, log
	start := time.Now()
	rm := NewRaftMetadata(cs)
	if o.Cluster.enabled() {
		no.peers = newPeers(cr.tls, o.API.APIKey, cr.httpAddr)
		cr.cs, rm.cluster = cs, cr
	}
	n, err := Open(no, rm, st)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := n.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	if o.Cluster.enabled() {
		cr.peers = n.peers
		if err := cr.start(n, httpAddr, o.TLSCert != ""); err != nil {
			return err
		}
		defer cr.close()
		log.Info("gossip", "addr", o.Cluster.Gossip, "join", strings.Join(o.Cluster.Join, ","), "bootstrap_expect", o.Cluster.BootstrapExpect,
			"voter", o.Cluster.Voter, "encrypted", o.Cluster.GossipKey != nil)
	}

	srv := &http.Server{
		Handler:           n.Handler(o.API),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if o.TLSCert != "" {
		scheme = "https"
	}
	log.Info("serving", "node", id, "url", scheme+"://"+httpAddr, "raft", cs.Addr(), "data", o.DataDir,
		"collections", len(n.Collections()), "open", time.Since(start).Round(time.Millisecond))
	if ready != nil {
		ready(httpAddr)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		if o.TLSCert != "" {
			err = srv.ServeTLS(ln, o.TLSCert, o.TLSKey)
		} else {
			err = srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("node: http: %w", err)
	})
	g.Go(func() error {
		<-gctx.Done()
		if o.Cluster.enabled() {
			log.Info("shutting down: handing off leadership and shards")
			n.leaving.Store(true)
			cr.handOff(5 * time.Second)
		}
		log.Info("shutting down: finishing in-flight requests")
		sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	err = g.Wait()
	log.Info("flushing indexes and closing")
	return err
}

// peerTLSConfig is the client side of calls to other nodes: nil over
// plain HTTP; over HTTPS, the CA file's certificates as roots (the
// system's without one).
func peerTLSConfig(serveTLS bool, caFile string) (*tls.Config, error) {
	if !serveTLS {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return c, nil
	}
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("node: --tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("node: --tls-ca %s: no PEM certificate in it", caFile)
	}
	c.RootCAs = pool
	return c, nil
}
