package store

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The kill test's writer: batch i (0-based) of the child's stream puts
// killItems new items and upserts one item of batch i−1 into another list.
const (
	killEnv   = "LOOKALIKE_STORE_WRITER_DIR"
	killItems = 4
	killDim   = 16
)

type killLoc struct {
	id   uint64
	list uint32
}

// killBatch is batch i, and applies it to the expected state.
func killBatch(i uint64, want map[string]killLoc) *Batch {
	b := NewBatch(1, 0, killDim)
	for j := range uint64(killItems) {
		u := fmt.Sprintf("b%d-%d", i, j)
		it := Item{UserID: u, ID: i*16 + j + 1, List: uint32(j % 3), Vector: vecOf(i*16+j+1, killDim), Meta: []byte(`{"k":1}`)}
		b.Put(it)
		if want != nil {
			want[u] = killLoc{it.ID, it.List}
		}
	}
	if i > 0 {
		u := fmt.Sprintf("b%d-0", i-1)
		it := Item{UserID: u, ID: i*16 + 10, List: 3 + uint32(i%2), Vector: vecOf(i*16+10, killDim)}
		b.Put(it)
		if want != nil {
			want[u] = killLoc{it.ID, it.List}
		}
	}
	return b
}

// TestWriterChild is the child process of TestKill9: it applies batches
// until killed, printing each acknowledged sequence number.
func TestWriterChild(t *testing.T) {
	dir := os.Getenv(killEnv)
	if dir == "" {
		t.Skip("only runs as TestKill9's child")
	}
	s, err := Open(dir, Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	last, _, err := s.LastSeq(1, 0)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	// Batch i has sequence i+1: every batch logs one record.
	for i := last; i < last+100_000; i++ {
		r, err := s.Apply(ctx, killBatch(i, nil))
		if err != nil || r.Seq != i+1 {
			fmt.Println("error", r.Seq, err)
			os.Exit(2)
		}
		fmt.Printf("ack %d\n", r.Seq) // os.Stdout is unbuffered
	}
	os.Exit(3)
}

func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	var acked uint64
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWriterChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), killEnv+"="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		killAfter := 15 + 10*round // acks this round before the kill
		n := 0
		deadline := time.AfterFunc(20*time.Second, func() { _ = cmd.Process.Kill() })
		for sc.Scan() {
			line := sc.Text()
			seq, ok := strings.CutPrefix(line, "ack ")
			if !ok {
				t.Fatalf("child says %q", line)
			}
			q, err := strconv.ParseUint(seq, 10, 64)
			if err != nil || q != acked+1 {
				t.Fatalf("ack %q after %d", line, acked)
			}
			acked = q
			if n++; n == killAfter {
				_ = cmd.Process.Kill() // SIGKILL: mid-stream, no cleanup
			}
		}
		deadline.Stop()
		// Lines in the pipe before the kill were acknowledged too; Scan
		// has read them all by now.
		_, _ = io.Copy(io.Discard, out)
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != -1 {
			t.Fatalf("round %d: child ended with %v, want killed", round, err)
		}
		if n < killAfter {
			t.Fatalf("round %d: child stopped after %d acks", round, n)
		}
		acked = checkKilled(t, dir, acked)
	}
}

// checkKilled reopens the store after a kill and checks it against the
// acknowledged batches: all of them present exactly once, and the batch in
// flight either whole or absent. It returns the batches present.
func checkKilled(t *testing.T, dir string, acked uint64) uint64 {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	last, _, err := s.LastSeq(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if last != acked && last != acked+1 {
		t.Fatalf("log ends at %d, %d acknowledged", last, acked)
	}
	want := map[string]killLoc{}
	for i := range last {
		killBatch(i, want)
	}
	// Every expected id in its place, through the directory.
	for u, w := range want {
		it, err := s.GetByUserID(ctx, 1, u)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if it.ID != w.id || it.List != w.list || len(it.Vector) != killDim {
			t.Fatalf("%s: got id %d list %d, want %+v", u, it.ID, it.List, w)
		}
	}
	// Nothing else stored: each user id once over all lists.
	seen := map[string]int{}
	lists, err := s.Lists(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lists {
		if err := s.ScanList(ctx, 1, l, func(it Item) error { seen[it.UserID]++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("%d user ids stored, want %d", len(seen), len(want))
	}
	for u, c := range seen {
		if c != 1 {
			t.Fatalf("%s stored %d times", u, c)
		}
	}
	if n := countKeys(t, s, recDir); n != len(want) {
		t.Fatalf("%d directory entries, want %d", n, len(want))
	}
	if n := countKeys(t, s, recID); n != len(want) {
		t.Fatalf("%d id entries, want %d", n, len(want))
	}
	// The log is whole and replays to the same state.
	got := map[string]killLoc{}
	next := uint64(1)
	if err := s.ScanLog(ctx, 1, 0, 1, func(r Record) error {
		if r.Seq != next {
			return fmt.Errorf("log seq %d, want %d", r.Seq, next)
		}
		next++
		for _, op := range r.Ops {
			if op.Kind == OpPut {
				got[op.Item.UserID] = killLoc{op.Item.ID, op.Item.List}
			} else {
				delete(got, op.Item.UserID)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if next != last+1 || len(got) != len(want) {
		t.Fatalf("log replays %d records to %d ids, want %d and %d", next-1, len(got), last, len(want))
	}
	for u, w := range want {
		if got[u] != w {
			t.Fatalf("log replays %s to %+v, want %+v", u, got[u], w)
		}
	}
	t.Logf("%d acknowledged, %d batches present", acked, last)
	return last
}
