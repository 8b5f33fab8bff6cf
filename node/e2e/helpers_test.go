package e2e

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"time"
)

func jsonBytes(v any) ([]byte, error) { return json.Marshal(v) }

// runBin runs the binary to completion (at most 30 s) and returns its
// combined output.
func runBin(args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	return string(out), err
}

func callKey(s *server, method, path, key, body string) (int, error) {
	req, err := http.NewRequest(method, s.url(path), strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
