package node

import (
	"errors"
	"os"
	"testing"
)

func TestUsersFile(t *testing.T) {
	dir := t.TempDir()
	m := map[uint64]userRef{1: {"a", false}, 7: {"ü-b", true}, 1 << 40: {"", false}}
	if err := writeUsers(dir, 3, 42, m); err != nil {
		t.Fatal(err)
	}
	seq, got, err := readUsers(dir, 3)
	if err != nil || seq != 42 || len(got) != len(m) {
		t.Fatalf("read: %d %v %v", seq, got, err)
	}
	for k, v := range m {
		if got[k] != v {
			t.Fatalf("entry %d: %+v, want %+v", k, got[k], v)
		}
	}
	applyUserOps(got, []storeOp{{put: false, id: 1}, {put: true, id: 9, user: "z", hasMeta: true}})
	if _, ok := got[1]; ok || got[9] != (userRef{"z", true}) {
		t.Fatalf("after ops: %v", got)
	}
	b, _ := os.ReadFile(usersPath(dir, 3))
	for _, bad := range [][]byte{b[:len(b)-1], append(append([]byte{}, b[:30]...), b[31:]...), {}} {
		os.WriteFile(usersPath(dir, 3), bad, 0o644)
		if _, _, err := readUsers(dir, 3); !errors.Is(err, errUsersFile) {
			t.Fatalf("corrupt file of %d bytes: %v", len(bad), err)
		}
	}
	flip := append([]byte{}, b...)
	flip[25] ^= 1
	os.WriteFile(usersPath(dir, 3), flip, 0o644)
	if _, _, err := readUsers(dir, 3); !errors.Is(err, errUsersFile) {
		t.Fatalf("flipped bit: %v", err)
	}
}

func FuzzDecodeUsers(f *testing.F) {
	dir := f.TempDir()
	writeUsers(dir, 1, 9, map[uint64]userRef{1: {"a", true}, 2: {"bb", false}})
	b, _ := os.ReadFile(usersPath(dir, 1))
	f.Add(b)
	f.Add([]byte(usersMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		seq, m, err := decodeUsers(data)
		if err != nil {
			if !errors.Is(err, errUsersFile) {
				t.Fatalf("error %v does not wrap errUsersFile", err)
			}
			return
		}
		// What decodes re-encodes to something that decodes the same.
		d := t.TempDir()
		if err := writeUsers(d, 1, seq, m); err != nil {
			t.Fatal(err)
		}
		seq2, m2, err := readUsers(d, 1)
		if err != nil || seq2 != seq || len(m2) != len(m) {
			t.Fatalf("round trip: %d %d %v", seq2, len(m2), err)
		}
	})
}
