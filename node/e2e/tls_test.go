package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lookalike/proto"
)

// TestTLS serves HTTPS with --tls-cert/--tls-key: a client that trusts
// the certificate talks to it; plain HTTP does not get an API answer.
func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	s := newServer(t, "--tls-cert", certFile, "--tls-key", keyFile, "--quiet")
	s.scheme = "https"
	s.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	s.start()
	s.must("POST", "/v1/collections", map[string]any{"name": "t", "metric": "ip", "dim": 2}, 201, nil)
	resp, err := http.Get("http://" + s.http + "/v1/collections")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP answered 200 on a TLS server")
		}
	}
	out, err := runBin("ctl", "--addr", "https://"+s.http, "collections")
	if err == nil || !strings.Contains(out, "certificate") {
		t.Fatalf("ctl trusted an unknown certificate: %v: %s", err, out)
	}
	s.stop()
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their files and a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestClusterTLS: a cluster served over HTTPS, its nodes calling each
// other (leader forwarding, the data plane) with --tls-ca.
func TestClusterTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes")
	}
	certFile, keyFile, pool := selfSigned(t)
	nodes := make([]*clusterNode, 3)
	var seeds []string
	for i := range nodes {
		nodes[i] = &clusterNode{id: fmt.Sprintf("n%d", i+1), gossip: freeAddr(t)}
		seeds = append(seeds, nodes[i].gossip)
	}
	for _, c := range nodes {
		c.server = newServer(t, "--model", "none", "--node-id", c.id, "--gossip", c.gossip, "--join", strings.Join(seeds, ","),
			"--bootstrap-expect", "3", "--auto-train-at", "-1", "--tls-cert", certFile, "--tls-key", keyFile, "--tls-ca", certFile)
		c.scheme = "https"
		c.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	for _, c := range nodes {
		c.start()
	}
	cdWaitFormed(t, nodes)
	time.Sleep(1500 * time.Millisecond) // the node table fills in
	// Through a follower (forwarded to the leader over HTTPS).
	nodes[2].must("POST", "/v1/collections", map[string]any{"name": "s", "metric": "l2", "dim": 4, "nlist": 4, "replicas": 2}, 201, nil)
	r := mrand.New(mrand.NewPCG(1, 2))
	var items []map[string]any
	for i := range 400 {
		items = append(items, map[string]any{"id": fmt.Sprintf("i%d", i), "vector": vec(r, 4)})
	}
	nodes[1].must("POST", "/v1/collections/s/vectors", map[string]any{"items": items}, 200, nil)
	nodes[0].must("POST", "/v1/collections/s/train", map[string]any{}, 202, nil)
	for _, c := range nodes {
		deadline := time.Now().Add(20 * time.Second)
		for {
			var d proto.Collection
			if st, _, err := c.call("GET", "/v1/collections/s", "", nil, &d); err == nil && st == 200 && d.State == proto.Ready {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not ready\n%s", c.id, c.log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	var cu proto.Cluster
	if _, _, err := nodes[0].call("GET", "/v1/cluster", "", nil, &cu); err != nil {
		t.Fatal(err)
	}
	primaries := map[string]bool{}
	for _, s := range cu.Shards {
		primaries[s.Primary] = true
	}
	if len(primaries) < 2 {
		t.Fatalf("shards not spread: %+v", cu.Shards)
	}
	var first []string
	for _, c := range nodes {
		var res proto.SearchResult
		c.must("POST", "/v1/collections/s/search", map[string]any{"vector": items[7]["vector"], "k": 5, "nprobe": 4}, 200, &res)
		var ids []string
		for _, h := range res.Hits {
			ids = append(ids, h.ID)
		}
		if res.Partial || len(ids) != 5 || ids[0] != "i7" {
			t.Fatalf("%s: %+v", c.id, res)
		}
		if first == nil {
			first = ids
		} else if strings.Join(ids, ",") != strings.Join(first, ",") {
			t.Fatalf("%s answers %v, %s answered %v", c.id, ids, nodes[0].id, first)
		}
	}
}
