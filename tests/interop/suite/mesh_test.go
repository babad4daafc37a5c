//go:build interop_mesh

// Mesh interop (issue 12): tinyderp and upstream derper in one region, each
// dialling the others with --mesh-with and one mesh key, driven by upstream
// derphttp clients. Unlike the rest of the suite these tests start their own
// servers (several per test, killed and restarted): run.sh's "mesh" part
// builds this file with the interop_mesh tag and passes the two binaries in
// INTEROP_TINYDERP_BIN and INTEROP_DERPER_BIN. Everything listens on
// 127.0.0.1; names like a.mesh.test are only TLS names (entries are written
// host:port/127.0.0.1, upstream's "dial this, verify that" syntax).
package interop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/tailcfg"
)

// meshRouteTimeout bounds the wait for routes to be learned after servers
// start (a derper redials a lost peer every 5 s).
const meshRouteTimeout = 30 * time.Second

// restartBound is the generous bound asserted on traffic flowing again after a
// tinyderp node is killed and restarted (measured values are far lower and
// reported in the NOTE line).
const restartBound = 30 * time.Second

type meshBins struct{ tinyderp, derper string }

func needMeshBins(t *testing.T) meshBins {
	t.Helper()
	b := meshBins{os.Getenv("INTEROP_TINYDERP_BIN"), os.Getenv("INTEROP_DERPER_BIN")}
	if b.tinyderp == "" {
		t.Skip("SKIPPED: INTEROP_TINYDERP_BIN not set (run.sh's mesh part sets it)")
	}
	return b
}

func (b meshBins) needDerper(t *testing.T) {
	t.Helper()
	if b.derper == "" {
		t.Skip("SKIPPED: INTEROP_DERPER_BIN not set (run.sh's mesh part builds upstream derper)")
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// testCA is a throwaway CA issuing the servers' certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // PEM of the CA certificate, given to servers as SSL_CERT_FILE
}

func newTestCA(t *testing.T, dir string) *testCA {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tinyderp mesh test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(dir, "ca.pem")
	writePEM(t, file, "CERTIFICATE", der)
	return &testCA{cert: cert, key: k, file: file}
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue writes certdir/NAME.crt and NAME.key (the manual-mode file names of
// derper and tinyderp) for a leaf valid for name.
func (ca *testCA) issue(t *testing.T, certdir, name string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(certdir, name+".crt"), "CERTIFICATE", der)
	writePEM(t, filepath.Join(certdir, name+".key"), "EC PRIVATE KEY", keyDER)
}

// meshNode is one server of the test region.
type meshNode struct {
	kind string // "tinyderp" or "derper"
	name string // TLS name
	port int
	dir  string
	args []string
	env  []string

	mu  sync.Mutex
	cmd *exec.Cmd
	out *os.File
}

// entry is this node in a --mesh-with list: verify name, dial 127.0.0.1.
func (n *meshNode) entry() string { return fmt.Sprintf("%s:%d/127.0.0.1", n.name, n.port) }

func (n *meshNode) start(t *testing.T) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	out, err := os.OpenFile(filepath.Join(n.dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(n.args[0], n.args[1:]...)
	cmd.Env = append(os.Environ(), n.env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", n.name, err)
	}
	n.cmd, n.out = cmd, out
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (%s) did not listen on %d; log:\n%s", n.name, n.kind, n.port, n.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill stops the node at once (SIGKILL), as a crash or power cut would.
func (n *meshNode) kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && n.cmd.Process != nil {
		n.cmd.Process.Kill()
		n.cmd.Wait()
		n.out.Close()
		n.cmd = nil
	}
}

func (n *meshNode) logText() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "server.log"))
	return string(b)
}

func (n *meshNode) region() *tailcfg.DERPRegion {
	return &tailcfg.DERPRegion{
		RegionID: regionID, RegionCode: "mesh", RegionName: "mesh test",
		Nodes: []*tailcfg.DERPNode{{
			Name: "900" + n.name[:1], RegionID: regionID, HostName: n.name,
			IPv4: "127.0.0.1", DERPPort: n.port, STUNPort: -1, InsecureForTests: true,
		}},
	}
}

// meshRegion builds nodes (not yet started) sharing one mesh key.
type meshRegion struct {
	t       *testing.T
	dir     string
	keyFile string
	ca      *testCA
	nodes   []*meshNode
}

func newMeshRegion(t *testing.T, withCA bool) *meshRegion {
	dir := t.TempDir()
	r := &meshRegion{t: t, dir: dir, keyFile: filepath.Join(dir, "mesh.key")}
	k := make([]byte, 32)
	rand.Read(k)
	if err := os.WriteFile(r.keyFile, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if withCA {
		r.ca = newTestCA(t, dir)
	}
	t.Cleanup(func() {
		for _, n := range r.nodes {
			n.kill()
			if t.Failed() {
				t.Logf("---- %s (%s) log ----\n%s", n.name, n.kind, n.logText())
			}
		}
	})
	return r
}

func (r *meshRegion) add(kind, name string) *meshNode {
	n := &meshNode{kind: kind, name: name, port: freeTCPPort(r.t), dir: filepath.Join(r.dir, name)}
	if err := os.MkdirAll(n.dir, 0o700); err != nil {
		r.t.Fatal(err)
	}
	if r.ca != nil {
		r.ca.issue(r.t, n.dir, name)
		n.env = []string{"SSL_CERT_FILE=" + r.ca.file, "SSL_CERT_DIR=/nonexistent"}
	} else {
		n.env = []string{"SSL_CERT_FILE=/nonexistent", "SSL_CERT_DIR=/nonexistent"}
	}
	r.nodes = append(r.nodes, n)
	return n
}

// configure sets every node's command line: each meshes with the same list
// of all nodes (its own entry included, as a copied list would be).
func (r *meshRegion) configure(bins meshBins, pins []string) {
	var list []string
	for _, n := range r.nodes {
		list = append(list, n.entry())
	}
	meshWith := strings.Join(list, ",")
	for _, n := range r.nodes {
		switch n.kind {
		case "tinyderp":
			n.args = append(tinyderpBase(bins.tinyderp, n), "--mesh-psk-file", r.keyFile, "--mesh-with", meshWith)
			if r.ca != nil {
				n.args = append(n.args, "--certmode", "manual", "--certdir", n.dir)
			}
			for _, p := range pins {
				n.args = append(n.args, "--mesh-pin", p)
			}
		case "derper":
			n.args = []string{bins.derper, "-a", fmt.Sprintf("127.0.0.1:%d", n.port), "-stun=false",
				"-http-port", "-1", "-hostname", n.name, "-certmode", "manual", "-certdir", n.dir,
				"-c", filepath.Join(n.dir, "derper.json"), "-mesh-psk-file", r.keyFile, "-mesh-with", meshWith}
		}
	}
}

func tinyderpBase(bin string, n *meshNode) []string {
	return []string{bin, "-a", fmt.Sprintf("127.0.0.1:%d", n.port), "--hostname", n.name,
		"--stun-port", "-1", "--http-port", "-1", "--state-dir", n.dir, "--log-level", "debug"}
}

func (r *meshRegion) startAll() {
	for _, n := range r.nodes {
		n.start(r.t)
	}
}

// meshVarz reads node's per-peer metric `name` for peer from /debug/varz.
func meshVarz(t *testing.T, node *meshNode, name string, peer *meshNode) (int, bool) {
	t.Helper()
	tg := target{host: "127.0.0.1", derpPort: node.port}
	line := fmt.Sprintf("%s{peer=%q}", name, fmt.Sprintf("%s:%d", peer.name, peer.port))
	return varzValue(t, tg, map[string]bool{line: true})
}

var probeSeq struct {
	sync.Mutex
	n int
}

// reach sends numbered packets from `from` to `to` every 100 ms until one
// arrives, and returns how long that took; it fails after limit.
func reach(t *testing.T, from, to *peer, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		probeSeq.Lock()
		probeSeq.n++
		payload := []byte(fmt.Sprintf("mesh probe %d", probeSeq.n))
		probeSeq.Unlock()
		if err := from.c.Send(to.pub(), payload); err != nil {
			t.Fatalf("send: %v", err)
		}
		for {
			select {
			case m := <-to.msgs:
				if pkt, ok := m.(derp.ReceivedPacket); ok && pkt.Source == from.pub() &&
					strings.HasPrefix(string(pkt.Data), "mesh probe ") {
					return time.Since(start)
				}
				continue
			case err := <-to.errs:
				t.Fatalf("receiver's connection ended: %v", err)
			case <-tick.C:
			case <-deadline.C:
				t.Fatalf("no packet from %s reached %s within %v", from.pub().ShortString(), to.pub().ShortString(), limit)
			}
			break
		}
	}
}

// drainProbes drops late duplicate probes so later awaits see fresh messages.
func drainProbes(p *peer) {
	for {
		select {
		case <-p.msgs:
		default:
			return
		}
	}
}

// TestMeshWithDerper: upstream derper and tinyderp mesh with each other (one
// list, one key, certificates from a test CA both verify through
// SSL_CERT_FILE); derphttp clients on each reach the other both ways, and
// PeerGone reaches the sender when the far client leaves, in both directions.
func TestMeshWithDerper(t *testing.T) {
	bins := needMeshBins(t)
	bins.needDerper(t)
	r := newMeshRegion(t, true)
	td := r.add("tinyderp", "a.mesh.test")
	dp := r.add("derper", "c.mesh.test")
	r.configure(bins, nil)
	r.startAll()

	onT := newPeer(t, td.region(), nil)
	onD := newPeer(t, dp.region(), nil)
	t1 := reach(t, onT, onD, meshRouteTimeout)
	t2 := reach(t, onD, onT, meshRouteTimeout)
	t.Logf("routes learned: tinyderp->derper after %v, derper->tinyderp after %v", t1, t2)
	drainProbes(onT)
	drainProbes(onD)

	// The per-peer metrics say so: connected, clients learned, packets both ways.
	for name, least := range map[string]int{
		"tinyderp_mesh_peer_connected":              1,
		"tinyderp_mesh_peer_clients":                1,
		"tinyderp_mesh_forwarded_out_packets_total": 1,
		"tinyderp_mesh_forwarded_in_packets_total":  1,
	} {
		if v, ok := meshVarz(t, td, name, dp); !ok || v < least {
			t.Errorf("%s for derper = %d (present %v), want at least %d", name, v, ok, least)
		}
	}

	// The derper-side client leaves: the tinyderp-side sender, which got
	// packets from it, is told.
	onD.c.Close()
	onT.await(t, "PeerGone for the client that left derper", peerGone(onD.pub()))

	// And the other way round.
	onT2 := newPeer(t, td.region(), nil)
	onD2 := newPeer(t, dp.region(), nil)
	reach(t, onT2, onD2, meshRouteTimeout)
	reach(t, onD2, onT2, meshRouteTimeout)
	drainProbes(onD2)
	onT2.c.Close()
	onD2.await(t, "PeerGone for the client that left tinyderp", peerGone(onT2.pub()))

	if !strings.Contains(td.logText(), "mesh c.mesh.test:") {
		t.Errorf("tinyderp logged no mesh connect line for derper")
	}
	fmt.Printf("NOTE: first route tinyderp->derper %v, derper->tinyderp %v\n", t1.Round(time.Millisecond), t2.Round(time.Millisecond))
}

// TestMeshThreeNodesRestart: two tinyderp and one derper, clients on every
// node reach every other node; one tinyderp is killed and restarted, and the
// time until traffic flows again in every direction through it is measured.
func TestMeshThreeNodesRestart(t *testing.T) {
	bins := needMeshBins(t)
	bins.needDerper(t)
	r := newMeshRegion(t, true)
	t1 := r.add("tinyderp", "a.mesh.test")
	t2 := r.add("tinyderp", "b.mesh.test")
	dp := r.add("derper", "c.mesh.test")
	r.configure(bins, nil)
	r.startAll()

	nodes := []*meshNode{t1, t2, dp}
	clients := make([]*peer, len(nodes))
	for i, n := range nodes {
		clients[i] = newPeer(t, n.region(), nil)
	}
	for i := range clients {
		for j := range clients {
			if i != j {
				reach(t, clients[i], clients[j], meshRouteTimeout)
			}
		}
	}
	for _, c := range clients {
		drainProbes(c)
	}

	// Own-name skipping: every node got the full list, none dialled itself.
	for _, n := range []*meshNode{t1, t2} {
		if strings.Contains(n.logText(), "that is this server") {
			t.Errorf("%s dialled itself instead of skipping its own name", n.name)
		}
	}

	t2.kill()
	restarted := time.Now()
	t2.start(t)
	c2 := newPeer(t, t2.region(), nil)
	var worst time.Duration
	for _, pair := range [][2]*peer{{c2, clients[0]}, {clients[0], c2}, {c2, clients[2]}, {clients[2], c2}} {
		reach(t, pair[0], pair[1], restartBound)
		if d := time.Since(restarted); d > worst {
			worst = d
		}
	}
	if worst > restartBound {
		t.Fatalf("traffic through the restarted node took %v (bound %v)", worst, restartBound)
	}
	if v, ok := meshVarz(t, t1, "tinyderp_mesh_reconnects_total", t2); !ok || v < 1 {
		t.Errorf("a.mesh.test counts %d reconnects to b.mesh.test (present %v), want at least 1", v, ok)
	}
	// The surviving nodes saw the peer go and come back.
	if !regexp.MustCompile(`mesh b\.mesh\.test:\d+: back`).MatchString(t1.logText()) {
		t.Errorf("a.mesh.test logged no 'back' line for b.mesh.test")
	}
	fmt.Printf("NOTE: traffic in all 4 directions through the restarted tinyderp within %v of its restart (bound %v)\n",
		worst.Round(time.Millisecond), restartBound)
}

// TestMeshPinnedSelfSigned: two tinyderp nodes with their own self-signed
// certificates mesh by pin alone (SSL_CERT_FILE points nowhere).
func TestMeshPinnedSelfSigned(t *testing.T) {
	bins := needMeshBins(t)
	r := newMeshRegion(t, false)
	p := r.add("tinyderp", "p.mesh.test")
	q := r.add("tinyderp", "q.mesh.test")
	// `tinyderp derpmap` creates the certificate and prints its pin.
	var pins []string
	pinRE := regexp.MustCompile(`sha256-raw:[0-9a-f]{64}`)
	for _, n := range []*meshNode{p, q} {
		out, err := exec.Command(bins.tinyderp, append([]string{"derpmap"}, tinyderpBase(bins.tinyderp, n)[1:]...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("derpmap: %v\n%s", err, out)
		}
		pin := pinRE.FindString(string(out))
		if pin == "" {
			t.Fatalf("no pin in derpmap output:\n%s", out)
		}
		pins = append(pins, n.name+"="+pin)
	}
	r.configure(bins, pins)
	r.startAll()
	cp := newPeer(t, p.region(), nil)
	cq := newPeer(t, q.region(), nil)
	d1 := reach(t, cp, cq, meshRouteTimeout)
	d2 := reach(t, cq, cp, meshRouteTimeout)
	fmt.Printf("NOTE: pinned peers routed after %v / %v\n", d1.Round(time.Millisecond), d2.Round(time.Millisecond))

	// A wrong pin is refused: a third node pinning p with q's pin never
	// connects to p, and says why.
	w := r.add("tinyderp", "w.mesh.test")
	w.args = append(tinyderpBase(bins.tinyderp, w), "--mesh-psk-file", r.keyFile,
		"--mesh-with", p.entry(), "--mesh-pin", "p.mesh.test="+strings.SplitN(pins[1], "=", 2)[1])
	w.start(t)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(w.logText(), "does not match the pin") {
		if time.Now().After(deadline) {
			t.Fatalf("node with a wrong pin did not report the mismatch; log:\n%s", w.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if strings.Contains(w.logText(), "mesh p.mesh.test:"+fmt.Sprint(p.port)+": connected") {
		t.Fatalf("node with a wrong pin connected anyway")
	}
}
