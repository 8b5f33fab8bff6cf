package node

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// StorageStats is implemented by a Storage that reports engine figures
// (Pebble's): /metrics exports each as lookalike_storage_<name>.
type StorageStats interface {
	Stats() map[string]float64
}

// ScannerStats is implemented by an Options.Scanner that reports figures
// (package cuda's): /metrics exports each as lookalike_scanner_<name>, a
// counter when the name ends in _total, else a gauge.
type ScannerStats interface {
	Metrics() map[string]float64
}

// metrics are the node's Prometheus metrics, on a registry of its own so
// that several nodes may live in one process (tests).
type metrics struct {
	reg      *prometheus.Registry
	latency  *prometheus.HistogramVec
	requests *prometheus.CounterVec
}

func newMetrics(n *Node) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "lookalike_http_request_duration_seconds",
		Help:    "HTTP request latency by route.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lookalike_http_requests_total",
		Help: "HTTP requests by route and status code.",
	}, []string{"route", "code"})
	m.reg.MustRegister(m.latency, m.requests, n.nodesContacted, n.scans.waiting, n.scans.refused, n.extraCalls, n.copyItems, n.rpcServed, n.dirSwept, n.shedGauge, nodeCollector{n},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if ss, ok := n.store.(StorageStats); ok {
		m.reg.MustRegister(storageCollector{ss})
	}
	if ss, ok := n.opts.Scanner.(ScannerStats); ok {
		m.reg.MustRegister(scannerCollector{ss})
	}
	if n.scanner != nil {
		m.reg.MustRegister(n.scanner.fallbacks)
	}
	return m
}

func (m *metrics) observe(route string, status int, d time.Duration) {
	if status == 0 {
		status = http.StatusOK
	}
	m.latency.WithLabelValues(route).Observe(d.Seconds())
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

var (
	descVectors = prometheus.NewDesc("lookalike_collection_vectors", "Live vectors per collection.", []string{"collection"}, nil)
	descLists   = prometheus.NewDesc("lookalike_collection_lists", "IVF lists per collection (0 while untrained).", []string{"collection"}, nil)
	descState   = prometheus.NewDesc("lookalike_collection_state", "Collection state: 1 untrained, 2 training, 3 ready.", []string{"collection"}, nil)
	descEpoch   = prometheus.NewDesc("lookalike_collection_epoch", "Collection table epoch.", []string{"collection"}, nil)
	descRaft    = prometheus.NewDesc("lookalike_raft_state", "1 for this node's current Raft state.", []string{"state"}, nil)
	descLeader  = prometheus.NewDesc("lookalike_raft_has_leader", "1 when the cluster has a Raft leader.", nil, nil)
	descNodes   = prometheus.NewDesc("lookalike_cluster_nodes", "Nodes in the cluster table.", nil, nil)
	descShards  = prometheus.NewDesc("lookalike_cluster_shards",
		"Shards per collection in this node's copy of the table, by state: all; under_replicated (fewer in-sync replicas than the collection asks for); copying (a node joining); away (waiting for a replica that was taken out to come back and catch up).",
		[]string{"collection", "state"}, nil)
)

// nodeCollector reads the gauges at scrape time.
type nodeCollector struct{ n *Node }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descVectors, descLists, descState, descEpoch, descRaft, descLeader, descNodes, descShards} {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.n.Collections() {
		if s.CountErr == nil && s.CountMissing == nil { // left out rather than wrong
			ch <- prometheus.MustNewConstMetric(descVectors, prometheus.GaugeValue, float64(s.Count), s.Name)
		}
		ch <- prometheus.MustNewConstMetric(descLists, prometheus.GaugeValue, float64(s.Lists), s.Name)
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, float64(s.State), s.Name)
		ch <- prometheus.MustNewConstMetric(descEpoch, prometheus.GaugeValue, float64(s.Epoch), s.Name)
	}
	ci := c.n.meta.Cluster()
	for _, st := range []string{"leader", "follower", "candidate", "shutdown"} {
		v := 0.0
		if ci.RaftState == st {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descRaft, prometheus.GaugeValue, v, st)
	}
	leader := 0.0
	if ci.Leader != "" {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, leader)
	ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(len(ci.Nodes)))
	if p, ok := c.n.meta.(placer); ok && c.n.peers != nil {
		for _, col := range p.table().Collections() {
			var all, under, copying, away int
			for s := range eachShard(col) {
				all++
				if len(s.Replicas) < col.Replicas {
					under++
				}
				if len(s.Joining) > 0 {
					copying++
				}
				if len(s.Away) > 0 {
					away++
				}
			}
			for st, v := range map[string]int{"all": all, "under_replicated": under, "copying": copying, "away": away} {
				ch <- prometheus.MustNewConstMetric(descShards, prometheus.GaugeValue, float64(v), col.Name, st)
			}
		}
	}
}

// storageCollector exports StorageStats. It is unchecked (describes
// nothing) because the set of figures is the engine's.
type storageCollector struct{ s StorageStats }

func (storageCollector) Describe(chan<- *prometheus.Desc) {}

func (c storageCollector) Collect(ch chan<- prometheus.Metric) {
	for name, v := range c.s.Stats() {
		ch <- prometheus.MustNewConstMetric(
			prometheus.NewDesc("lookalike_storage_"+name, "Storage engine figure "+name+".", nil, nil),
			prometheus.GaugeValue, v)
	}
}

// scannerCollector exports ScannerStats, unchecked like storageCollector.
type scannerCollector struct{ s ScannerStats }

func (scannerCollector) Describe(chan<- *prometheus.Desc) {}

func (c scannerCollector) Collect(ch chan<- prometheus.Metric) {
	for name, v := range c.s.Metrics() {
		typ := prometheus.GaugeValue
		if strings.HasSuffix(name, "_total") {
			typ = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(
			prometheus.NewDesc("lookalike_scanner_"+name, "Scanner figure "+name+".", nil, nil), typ, v)
	}
}
