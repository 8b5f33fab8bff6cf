package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"lookalike/internal/testenv"
	"lookalike/proto"
)

// bin is the lookalike binary TestMain built, or $LOOKALIKE_E2E_BIN.
var bin string

// buildTags are the tags TestMain builds the binary with: "cuda" when this
// test binary has the GPU tests (gpu_test.go).
var buildTags []string

// TestMain builds cmd/lookalike for the tests to run, unless
// LOOKALIKE_E2E_BIN names a binary built already: on a machine without Go
// (the GPU machine, `make gpu-test`), the test binary runs that one.
func TestMain(m *testing.M) {
	if prebuilt := os.Getenv("LOOKALIKE_E2E_BIN"); prebuilt != "" {
		abs, err := filepath.Abs(prebuilt)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: LOOKALIKE_E2E_BIN:", err)
			os.Exit(1)
		}
		bin = abs
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "lookalike-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "lookalike")
	args := []string{"build", "-o", bin}
	if os.Getenv("LOOKALIKE_E2E_RACE") != "" {
		args = append(args, "-race") // the servers under the race detector
	}
	if len(buildTags) > 0 {
		args = append(args, "-tags", strings.Join(buildTags, ","))
	}
	build := exec.Command("go", append(args, "lookalike/cmd/lookalike")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: go build:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuf is a goroutine-safe log buffer.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// server is one `lookalike serve` process over a data directory; restart
// reuses its addresses.
type server struct {
	t        testing.TB
	dir      string
	http     string
	raft     string
	args     []string
	cmd      *exec.Cmd
	log      *syncBuf // the current process's output
	past     string   // the output of the processes before a restart
	done     chan error
	startDur time.Duration
	// scheme and client: "http" and http.DefaultClient unless a test
	// serves TLS.
	scheme string
	client *http.Client
	// env is added to the process's environment.
	env []string
	// cleanup is set once the test has a cleanup that kills the server's
	// current process: one per server, registered at its first start, so
	// that a restart does not register a later one, which would kill the
	// process before cleanups registered after the first start (a failed
	// test's goroutine dump, cdLogTails) could read it.
	cleanup bool
}

func (s *server) url(path string) string {
	if s.scheme == "" {
		return "http://" + s.http + path
	}
	return s.scheme + "://" + s.http + path
}

// fullLog is the output of every process the server has run, restarts
// marked.
func (s *server) fullLog() string {
	if s.log == nil {
		return s.past
	}
	return s.past + s.log.String()
}

// debugAddr is the server's --debug-addr (its profiler), or "".
func (s *server) debugAddr() string {
	addr := ""
	for j, a := range s.args {
		if a == "--debug-addr" && j+1 < len(s.args) {
			addr = s.args[j+1]
		}
	}
	return addr
}

func (s *server) hc() *http.Client {
	if s.client == nil {
		return http.DefaultClient
	}
	return s.client
}

func freeAddr(t testing.TB) string { return testenv.FreeAddr(t) }

// startServer starts a server on free loopback ports with its data in a
// new temporary directory.
func startServer(t *testing.T, args ...string) *server { return startServerB(t, args...) }

// startServerB is startServer for tests and benchmarks.
func startServerB(t testing.TB, args ...string) *server {
	s := &server{t: t, dir: t.TempDir(), http: freeAddr(t), raft: freeAddr(t), args: args}
	s.start()
	return s
}

// newServer prepares a server without starting it.
func newServer(t testing.TB, args ...string) *server {
	return &server{t: t, dir: t.TempDir(), http: freeAddr(t), raft: freeAddr(t), args: args}
}

func (s *server) start() {
	s.t.Helper()
	args := append([]string{"serve", "--data", s.dir, "--http", s.http, "--raft", s.raft}, s.args...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append(os.Environ(), s.env...)
	if s.log != nil {
		s.past += s.log.String() + "--- e2e: restarted ---\n"
	}
	s.log = &syncBuf{}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	begin := time.Now()
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan error, 1)
	cmd, done := s.cmd, s.done
	go func() { done <- cmd.Wait() }()
	if !s.cleanup {
		s.cleanup = true
		s.t.Cleanup(func() {
			if s.cmd.ProcessState == nil {
				s.cmd.Process.Kill()
				<-s.done
			}
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := s.hc().Get(s.url("/healthz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				s.startDur = time.Since(begin)
				return
			}
		}
		select {
		case err := <-done:
			done <- err
			s.t.Fatalf("server exited before serving: %v\n%s", err, s.log)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("server not healthy after 30 s\n%s", s.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Fatalf("server exited with %v after SIGTERM\n%s", err, s.log)
		}
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		s.t.Fatalf("server still running 30 s after SIGTERM\n%s", s.log)
	}
}

// kill9 kills the process without warning.
func (s *server) kill9() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

func (s *server) restart() {
	s.t.Helper()
	s.start()
}

// call does one request and decodes a 2xx JSON answer into out.
func (s *server) call(method, path, ctype string, body []byte, out any) (int, proto.Code, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.url(path), bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := s.hc().Do(req)
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
		if err := json.Unmarshal(b, &e); err != nil || e.Error == nil || e.Error.Message == "" {
			return resp.StatusCode, "", fmt.Errorf("status %d with body %q, not the error shape", resp.StatusCode, b)
		}
		return resp.StatusCode, e.Error.Code, fmt.Errorf("%d %s: %s", resp.StatusCode, e.Error.Code, e.Error.Message)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, "", fmt.Errorf("decode %q: %v", b, err)
		}
	}
	return resp.StatusCode, "", nil
}

// must is call that fails the test unless the status is want.
func (s *server) must(method, path string, body any, want int, out any) {
	s.t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			s.t.Fatal(err)
		}
	}
	st, _, err := s.call(method, path, proto.JSONContentType, b, out)
	if st != want {
		s.t.Fatalf("%s %s: status %d, want %d (%v)", method, path, st, want, err)
	}
}

// collection describes name. A node of a cluster answers 503 while it
// is catching up with the Raft leader's table (after its start or a
// lapse of its lease) or cannot count a shard; that is retried for up to
// 10 s, as a client would.
func (s *server) collection(name string) proto.Collection {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var c proto.Collection
		st, _, err := s.call("GET", "/v1/collections/"+name, proto.JSONContentType, nil, &c)
		if st == 200 {
			return c
		}
		if st != 503 || time.Now().After(deadline) {
			s.t.Fatalf("GET /v1/collections/%s: status %d, want 200 (%v)", name, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) waitReady(name string) proto.Collection {
	s.t.Helper()
	return s.waitReadyFor(name, 60*time.Second)
}

func (s *server) waitReadyFor(name string, limit time.Duration) proto.Collection {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		c := s.collection(name)
		if c.State == proto.Ready {
			return c
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("collection %s still %s after %v", name, c.State, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ctl runs `lookalike ctl` against the server.
func (s *server) ctl(args ...string) (string, error) {
	cmd := exec.Command(bin, append([]string{"ctl", "--addr", s.http}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
