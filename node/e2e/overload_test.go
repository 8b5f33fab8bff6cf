package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"lookalike/proto"
)

// TestOverloadRefusesQuickly floods a server that runs one search at a
// time with a queue long enough for the whole flood: every search is
// answered 200 or refused 429 `overloaded` with Retry-After; searches
// that waited the queue's 20 ms are refused then (a queue bounded only in
// length would have answered them all, late), and the server answers
// normally afterwards. The real process and limiter.
func TestOverloadRefusesQuickly(t *testing.T) {
	s := startServer(t, "--auto-train-at", "-1", "--quiet",
		"--max-reads", "1", "--queue-reads", "1000", "--read-wait", "20ms",
		// 200 connections at once make the run queue long enough to
		// shed (sched.go), which would refuse before the queue: off, so
		// that this test is about the queue's wait.
		"--shed-above", "-1")
	const d, n = 64, 20000
	if out, err := s.ctl("create", "c", "--dim", fmt.Sprint(d), "--metric", "l2", "--nlist", "16"); err != nil {
		t.Fatalf("ctl create: %v: %s", err, out)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for b := 0; b < n; b += 10_000 {
		var ins proto.Insert
		for i := b; i < b+10_000; i++ {
			ins.Items = append(ins.Items, proto.InsertItem{ID: fmt.Sprintf("v%d", i), Vector: vec(r, d)})
		}
		s.must("POST", "/v1/collections/c/vectors", ins, 200, nil)
	}
	if out, err := s.ctl("train", "c"); err != nil {
		t.Fatalf("ctl train: %v: %s", err, out)
	}
	s.waitReady("c")

	body, err := json.Marshal(map[string]any{"vector": vec(r, d), "k": 100, "nprobe": 16})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	defer hc.CloseIdleConnections()
	const clients, each = 200, 4
	type reply struct {
		status int
		code   proto.Code
		msg    string
		retry  string
		took   time.Duration
		err    error
	}
	replies := make(chan reply, clients*each)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range each {
				t0 := time.Now()
				resp, err := hc.Post(s.url("/v1/collections/c/search"), "application/json", bytes.NewReader(body))
				if err != nil {
					replies <- reply{err: err}
					continue
				}
				var eb proto.ErrorBody
				if resp.StatusCode != 200 {
					_ = json.NewDecoder(resp.Body).Decode(&eb)
				}
				resp.Body.Close()
				rp := reply{status: resp.StatusCode, retry: resp.Header.Get("Retry-After"), took: time.Since(t0)}
				if eb.Error != nil {
					rp.code, rp.msg = eb.Error.Code, eb.Error.Message
				}
				replies <- rp
			}
		})
	}
	wg.Wait()
	close(replies)
	ok, refused, waited := 0, 0, 0
	var slowestRefusal time.Duration
	for rp := range replies {
		switch {
		case rp.err != nil:
			t.Fatalf("search: %v", rp.err)
		case rp.status == 200:
			ok++
		case rp.status == 429 && rp.code == proto.Overloaded && rp.retry != "":
			refused++
			if strings.Contains(rp.msg, "no slot within") {
				waited++
			}
			slowestRefusal = max(slowestRefusal, rp.took)
		default:
			t.Fatalf("search: status %d code %q Retry-After %q", rp.status, rp.code, rp.retry)
		}
	}
	t.Logf("%d searches: %d answered, %d refused, %d of them after the queue's wait (slowest refusal %v)",
		clients*each, ok, refused, waited, slowestRefusal.Round(time.Millisecond))
	if ok == 0 || waited == 0 {
		t.Fatalf("%d answered, %d refused after waiting: want both", ok, waited)
	}
	// A refusal waits the queue's 20 ms; 2 s leaves room for a slow
	// machine.
	if slowestRefusal > 2*time.Second {
		t.Errorf("slowest refusal took %v: the queue is not bounded in time", slowestRefusal)
	}
	var res proto.SearchResult
	s.must("POST", "/v1/collections/c/search", map[string]any{"id": "v7", "k": 3, "nprobe": 16}, 200, &res)
	if len(res.Hits) == 0 || res.Hits[0].ID != "v7" {
		t.Fatalf("after the flood: %+v", res.Hits)
	}
}
