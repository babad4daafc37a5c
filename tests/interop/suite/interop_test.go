// Package interop drives a running DERP server (tinyderp, or upstream derper
// as the reference) with Tailscale's own client code: derp/derphttp for the
// relay protocol, net/stun for STUN, and tailcfg.DERPNode for how a client
// reads a DERP map entry (InsecureForTests, CertName pinning, hostnames).
//
// The server is started by run.sh; this file only reads where it is from the
// environment (see envTarget). The same file is compiled against several
// tailscale.com releases; the per-release differences live in compat_test.go
// next to each release's go.mod.
package interop

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"go4.org/mem"
	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/disco"
	"tailscale.com/net/stun"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// regionID is the DERP map region the suite puts the server under test in.
const regionID = 900

// recvTimeout bounds every wait for a frame; loopback answers in microseconds,
// so anything slower than this is a hang, not latency.
const recvTimeout = 10 * time.Second

// recvQueueDepth bounds the per-client channel of received messages; the
// tests send far fewer frames than this before they read them.
const recvQueueDepth = 1024

// target describes the running server, read from INTEROP_* variables.
type target struct {
	host       string // DERPNode.HostName for most tests (an IP literal)
	verifyName string // hostname whose verification the CA-file test exercises
	derpPort   int
	stunPort   int
	httpPort   int    // plain-HTTP port, 0 when the server has none
	certName   string // sha256-raw:<hex> pin of the leaf certificate
	caFile     string // PEM of the self-signed leaf, trusted as a root in the CA-file test
	keyFile    string // derper-format server key JSON, to learn the expected public key
	meshKey    string // 64 hex digits, empty when the server has no mesh key
	metaCert   bool   // whether the server appends the derpkey meta certificate
}

func envTarget(t *testing.T) target {
	t.Helper()
	atoi := func(name string, def int) int {
		v := os.Getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", name, v, err)
		}
		return n
	}
	tg := target{
		host:       os.Getenv("INTEROP_HOST"),
		verifyName: os.Getenv("INTEROP_VERIFY_NAME"),
		derpPort:   atoi("INTEROP_DERP_PORT", 0),
		stunPort:   atoi("INTEROP_STUN_PORT", 0),
		httpPort:   atoi("INTEROP_HTTP_PORT", 0),
		certName:   os.Getenv("INTEROP_CERTNAME"),
		caFile:     os.Getenv("INTEROP_CA_FILE"),
		keyFile:    os.Getenv("INTEROP_SERVER_KEY_FILE"),
		meshKey:    os.Getenv("INTEROP_MESH_KEY"),
		metaCert:   os.Getenv("INTEROP_META_CERT") != "0",
	}
	if tg.host == "" || tg.derpPort == 0 {
		t.Fatal("INTEROP_HOST and INTEROP_DERP_PORT must name the server under test (run.sh sets them)")
	}
	if tg.verifyName == "" {
		tg.verifyName = tg.host
	}
	return tg
}

// node builds the DERP map entry a user would paste for this server; edit
// adjusts the TLS-related fields per test.
func (tg target) region(edit func(n *tailcfg.DERPNode)) *tailcfg.DERPRegion {
	n := &tailcfg.DERPNode{
		Name:     "900a",
		RegionID: regionID,
		HostName: tg.host,
		DERPPort: tg.derpPort,
		STUNPort: tg.stunPort,
	}
	if edit != nil {
		edit(n)
	}
	return &tailcfg.DERPRegion{
		RegionID:   regionID,
		RegionCode: "interop",
		RegionName: "interop test",
		Nodes:      []*tailcfg.DERPNode{n},
	}
}

func insecure(n *tailcfg.DERPNode) { n.InsecureForTests = true }

// expectedServerKey reads the derper-format key file the server uses.
func (tg target) expectedServerKey(t *testing.T) key.NodePublic {
	t.Helper()
	if tg.keyFile == "" {
		t.Fatal("INTEROP_SERVER_KEY_FILE not set")
	}
	raw, err := os.ReadFile(tg.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct{ PrivateKey key.NodePrivate }
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("server key file %s: %v", tg.keyFile, err)
	}
	return cfg.PrivateKey.Public()
}

// peer is one derphttp client plus a goroutine that keeps calling Recv (which
// is also what lets derphttp match pongs to pings).
type peer struct {
	priv key.NodePrivate
	c    *derphttp.Client
	msgs chan derp.ReceivedMessage
	errs chan error
}

func (p *peer) pub() key.NodePublic { return p.priv.Public() }

// newPeer connects a fresh client to region; edit may set mesh fields before
// the connection is made.
func newPeer(t *testing.T, region *tailcfg.DERPRegion, edit func(c *derphttp.Client)) *peer {
	t.Helper()
	return connectPeer(t, region, edit, true)
}

// connectPeer is newPeer with the readiness ping optional (a test that
// expects the server to hang up cannot wait for a pong).
func connectPeer(t *testing.T, region *tailcfg.DERPRegion, edit func(c *derphttp.Client), ping bool) *peer {
	t.Helper()
	p := &peer{
		priv: key.NewNode(),
		msgs: make(chan derp.ReceivedMessage, recvQueueDepth),
		errs: make(chan error, 1),
	}
	p.c = derphttp.NewRegionClient(p.priv, t.Logf, newNetMon(), func() *tailcfg.DERPRegion { return region })
	if edit != nil {
		edit(p.c)
	}
	t.Cleanup(func() { p.c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), recvTimeout)
	defer cancel()
	if err := p.c.Connect(ctx); err != nil {
		t.Fatalf("connect: %v", err)
	}
	go p.loop()
	// Connect returns once the handshake is written, possibly before the
	// server has registered the key; a ping round trip is answered only by a
	// registered connection, so after it packets to this key are routable.
	if !ping {
		return p
	}
	if err := p.c.Ping(ctx); err != nil {
		t.Fatalf("first ping after connect: %v", err)
	}
	return p
}

func (p *peer) loop() {
	for {
		m, err := p.c.Recv()
		if err != nil {
			select {
			case p.errs <- err:
			default:
			}
			return
		}
		if pkt, ok := m.(derp.ReceivedPacket); ok {
			// Data aliases the client's read buffer; keep a copy.
			pkt.Data = append([]byte(nil), pkt.Data...)
			m = pkt
		}
		select {
		case p.msgs <- m:
		default:
			// Counted by the test as a missing message; the bound keeps a
			// misbehaving server from growing memory without limit.
		}
	}
}

// await returns the first message for which match is true, skipping others
// (keep-alives, server info, unrelated notices).
func (p *peer) await(t *testing.T, what string, match func(derp.ReceivedMessage) bool) derp.ReceivedMessage {
	t.Helper()
	deadline := time.NewTimer(recvTimeout)
	defer deadline.Stop()
	for {
		select {
		case m := <-p.msgs:
			if match(m) {
				return m
			}
			t.Logf("while waiting for %s: skipped %T", what, m)
		case err := <-p.errs:
			t.Fatalf("while waiting for %s: connection ended: %v", what, err)
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", recvTimeout, what)
		}
	}
}

// quiet asserts that nothing matching arrives within d.
func (p *peer) quiet(t *testing.T, d time.Duration, what string, match func(derp.ReceivedMessage) bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		select {
		case m := <-p.msgs:
			if match(m) {
				t.Fatalf("unexpected %s: %#v", what, m)
			}
		case <-deadline.C:
			return
		}
	}
}

func packetFrom(src key.NodePublic, data []byte) func(derp.ReceivedMessage) bool {
	return func(m derp.ReceivedMessage) bool {
		pkt, ok := m.(derp.ReceivedPacket)
		return ok && pkt.Source == src && string(pkt.Data) == string(data)
	}
}

func peerGone(k key.NodePublic) func(derp.ReceivedMessage) bool {
	return func(m derp.ReceivedMessage) bool {
		g, ok := m.(derp.PeerGoneMessage)
		return ok && g.Peer == k
	}
}

func peerPresent(k key.NodePublic) func(derp.ReceivedMessage) bool {
	return func(m derp.ReceivedMessage) bool {
		pp, ok := m.(derp.PeerPresentMessage)
		return ok && pp.Key == k
	}
}

// discoPing builds a real, sealed disco Ping the way magicsock does, so that
// the server classifies it as disco (it only looks at the magic prefix).
func discoPing(to key.NodePublic) []byte {
	sender := key.NewDisco()
	receiver := key.NewDisco()
	ping := &disco.Ping{TxID: stun.NewTxID(), NodeKey: to}
	sealed := sender.Shared(receiver.Public()).Seal(ping.AppendMarshal(nil))
	pkt := append([]byte(disco.Magic), sender.Public().AppendTo(nil)...)
	return append(pkt, sealed...)
}

// metaCertKey returns the server key announced by a derpkey meta certificate
// in the handshake, as upstream's client parses it, if there is one.
func metaCertKey(t *testing.T, cs *tls.ConnectionState) (key.NodePublic, int64, bool) {
	t.Helper()
	for _, cert := range cs.PeerCertificates {
		hexKey, ok := strings.CutPrefix(cert.Subject.CommonName, "derpkey")
		if !ok {
			continue
		}
		raw, err := hex.DecodeString(hexKey)
		if err != nil || len(raw) != 32 {
			t.Fatalf("meta cert CN %q does not hold a 32-byte hex key", cert.Subject.CommonName)
		}
		return key.NodePublicFromRaw32(mem.B(raw)), cert.SerialNumber.Int64(), true
	}
	return key.NodePublic{}, 0, false
}

// ---- TLS and the DERP map's trust fields ----

// TestTLSInsecureForTests: InsecureForTests accepts the self-signed cert and
// the handshake reaches the server's real key.
func TestTLSInsecureForTests(t *testing.T) {
	tg := envTarget(t)
	p := newPeer(t, tg.region(insecure), nil)
	if got, want := p.c.ServerPublicKey(), tg.expectedServerKey(t); got != want {
		t.Fatalf("server key %v, key file says %v", got, want)
	}
	cs, ok := p.c.TLSConnectionState()
	if !ok {
		t.Fatal("no TLS state: the client did not use TLS")
	}
	if cs.Version != tls.VersionTLS13 {
		t.Errorf("TLS version %#x, want TLS 1.3 (fast start needs it)", cs.Version)
	}
}

// TestTLSCertNamePinned: CertName "sha256-raw:<hex>" alone (no
// InsecureForTests) is enough, and the pin printed by the server is the
// hash of the leaf it serves.
func TestTLSCertNamePinned(t *testing.T) {
	tg := envTarget(t)
	if !supportsCertNamePin {
		t.Skipf("client %s predates sha256-raw CertName pinning (v1.82.0)", clientVersion)
	}
	if tg.certName == "" {
		t.Fatal("INTEROP_CERTNAME not set")
	}
	region := tg.region(func(n *tailcfg.DERPNode) { n.CertName = tg.certName })
	if pinBrokenWithMetaCert && tg.metaCert {
		// Upstream v1.82.x counted the meta certificate as a second leaf and
		// refused every pinned server that sends one (fixed in v1.84.0). This
		// records that the release still behaves like that against this server.
		c := derphttp.NewRegionClient(key.NewNode(), t.Logf, newNetMon(), func() *tailcfg.DERPRegion { return region })
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), recvTimeout)
		defer cancel()
		err := c.Connect(ctx)
		if err == nil {
			t.Fatalf("client %s accepted a pinned cert next to a meta cert; upstream documents that it cannot", clientVersion)
		}
		t.Logf("NOTE: XFAIL refused as upstream documents for %s with the meta cert on: %v", clientVersion, err)
		return
	}
	p := newPeer(t, region, nil)
	cs, ok := p.c.TLSConnectionState()
	if !ok || len(cs.PeerCertificates) == 0 {
		t.Fatal("no peer certificates")
	}
	sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
	if got := "sha256-raw:" + hex.EncodeToString(sum[:]); got != tg.certName {
		t.Fatalf("leaf hash %s, server printed %s", got, tg.certName)
	}
}

// TestTLSWrongPinRefused: a pin that does not match must fail the connection
// (proves the pin is really checked).
func TestTLSWrongPinRefused(t *testing.T) {
	tg := envTarget(t)
	if !supportsCertNamePin {
		t.Skipf("client %s predates sha256-raw CertName pinning (v1.82.0)", clientVersion)
	}
	wrong := "sha256-raw:" + strings.Repeat("00", 32)
	region := tg.region(func(n *tailcfg.DERPNode) { n.CertName = wrong })
	c := derphttp.NewRegionClient(key.NewNode(), t.Logf, newNetMon(), func() *tailcfg.DERPRegion { return region })
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), recvTimeout)
	defer cancel()
	if err := c.Connect(ctx); err == nil {
		t.Fatal("connected with a wrong sha256-raw pin")
	}
}

// TestTLSUntrustedRefused: with no pin, no InsecureForTests and no trusted
// root, the self-signed cert must be refused.
func TestTLSUntrustedRefused(t *testing.T) {
	tg := envTarget(t)
	if os.Getenv("SSL_CERT_FILE") != "" {
		t.Fatal("SSL_CERT_FILE is set; this test needs the system roots only")
	}
	region := tg.region(func(n *tailcfg.DERPNode) { n.HostName = tg.verifyName })
	c := derphttp.NewRegionClient(key.NewNode(), t.Logf, newNetMon(), func() *tailcfg.DERPRegion { return region })
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), recvTimeout)
	defer cancel()
	if err := c.Connect(ctx); err == nil {
		t.Fatal("connected to a self-signed server without any trust")
	}
}

// TestTLSTrustedCAFile: normal hostname verification succeeds when the
// self-signed cert is trusted through a CA file (SSL_CERT_FILE, read by Go's
// system root loader). Runs in a child process because Go loads the system
// roots once per process.
func TestTLSTrustedCAFile(t *testing.T) {
	tg := envTarget(t)
	if os.Getenv("INTEROP_CHILD") == "1" {
		p := newPeer(t, tg.region(func(n *tailcfg.DERPNode) { n.HostName = tg.verifyName }), nil)
		if got, want := p.c.ServerPublicKey(), tg.expectedServerKey(t); got != want {
			t.Fatalf("server key %v, want %v", got, want)
		}
		return
	}
	if tg.caFile == "" {
		t.Fatal("INTEROP_CA_FILE not set")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestTLSTrustedCAFile$", "-test.v")
	cmd.Env = append(os.Environ(), "INTEROP_CHILD=1", "SSL_CERT_FILE="+tg.caFile, "SSL_CERT_DIR=/nonexistent")
	out, err := cmd.CombinedOutput()
	t.Logf("child output:\n%s", out)
	if err != nil {
		t.Fatalf("verification with %s trusted failed: %v", tg.caFile, err)
	}
	if !strings.Contains(string(out), "--- PASS: TestTLSTrustedCAFile") {
		t.Fatal("child did not run the test")
	}
}

// TestFastStart: with the meta certificate on, upstream's client finds the
// server key in the handshake and uses Derp-Fast-Start (no HTTP response,
// ClientInfo sent with the request); with it off, the classic 101 path.
// Either way the connection must then carry traffic.
func TestFastStart(t *testing.T) {
	tg := envTarget(t)
	a := newPeer(t, tg.region(insecure), nil)
	b := newPeer(t, tg.region(insecure), nil)
	cs, ok := a.c.TLSConnectionState()
	if !ok {
		t.Fatal("no TLS state")
	}
	metaKey, serial, found := metaCertKey(t, cs)
	switch {
	case tg.metaCert && !found:
		t.Fatal("server should send a derpkey meta certificate but none was presented")
	case tg.metaCert:
		if metaKey != a.c.ServerPublicKey() {
			t.Fatalf("meta cert key %v != ServerKey frame key %v", metaKey, a.c.ServerPublicKey())
		}
		if serial != 2 {
			t.Fatalf("meta cert serial %d, want protocol version 2", serial)
		}
		if cs.Version != tls.VersionTLS13 {
			t.Fatalf("TLS %#x: fast start needs 1.3", cs.Version)
		}
		t.Logf("NOTE: fast start (meta cert for %v, TLS 1.3)", metaKey.ShortString())
	case found:
		t.Fatal("meta certificate presented although the server was told to leave it out")
	default:
		t.Log("NOTE: no meta cert: classic 101 upgrade path")
	}
	msg := []byte("after handshake")
	if err := a.c.Send(b.pub(), msg); err != nil {
		t.Fatal(err)
	}
	b.await(t, "packet after fast start", packetFrom(a.pub(), msg))
}

// ---- relay behaviour ----

// TestSendRecvBothWays: packets of several sizes, up to the 64 KiB maximum,
// cross in both directions with their source key, in order.
func TestSendRecvBothWays(t *testing.T) {
	tg := envTarget(t)
	a := newPeer(t, tg.region(insecure), nil)
	b := newPeer(t, tg.region(insecure), nil)
	sizes := []int{1, 100, 1280, 9000, derp.MaxPacketSize}
	for _, dir := range []struct {
		name     string
		from, to *peer
	}{{"a->b", a, b}, {"b->a", b, a}} {
		for _, n := range sizes {
			data := make([]byte, n)
			for i := range data {
				data[i] = byte(i*7 + n)
			}
			if err := dir.from.c.Send(dir.to.pub(), data); err != nil {
				t.Fatalf("%s send %d bytes: %v", dir.name, n, err)
			}
			dir.to.await(t, fmt.Sprintf("%s %d-byte packet", dir.name, n), packetFrom(dir.from.pub(), data))
		}
	}
	// A burst well under the server's per-client queue: all delivered in order.
	const burst = 24
	for i := 0; i < burst; i++ {
		if err := a.c.Send(b.pub(), []byte(fmt.Sprintf("burst-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < burst; i++ {
		want := []byte(fmt.Sprintf("burst-%03d", i))
		m := b.await(t, "burst packet", func(m derp.ReceivedMessage) bool { _, ok := m.(derp.ReceivedPacket); return ok })
		if got := m.(derp.ReceivedPacket); got.Source != a.pub() || string(got.Data) != string(want) {
			t.Fatalf("burst #%d: got %q from %v, want %q from %v", i, got.Data, got.Source, want, a.pub())
		}
	}
}

// TestPeerGoneNotHere: a disco packet to a key nobody holds earns a
// PeerGone(NotHere); a non-disco one is silently dropped.
func TestPeerGoneNotHere(t *testing.T) {
	tg := envTarget(t)
	a := newPeer(t, tg.region(insecure), nil)
	nobody := key.NewNode().Public()
	if err := a.c.Send(nobody, []byte("plain data, not disco")); err != nil {
		t.Fatal(err)
	}
	a.quiet(t, 500*time.Millisecond, "PeerGone for a non-disco drop", peerGone(nobody))
	if err := a.c.Send(nobody, discoPing(nobody)); err != nil {
		t.Fatal(err)
	}
	m := a.await(t, "PeerGone(NotHere)", peerGone(nobody)).(derp.PeerGoneMessage)
	if m.Reason != derp.PeerGoneReasonNotHere {
		t.Fatalf("reason %d, want NotHere (%d)", m.Reason, derp.PeerGoneReasonNotHere)
	}
}

// TestPeerGoneDisconnected: a client that received packets from S is told
// PeerGone(S, Disconnected) when S leaves; a client that only sent to S is not.
func TestPeerGoneDisconnected(t *testing.T) {
	tg := envTarget(t)
	receiver := newPeer(t, tg.region(insecure), nil)
	onlySender := newPeer(t, tg.region(insecure), nil)
	s := newPeer(t, tg.region(insecure), nil)
	hello := []byte("hello from s")
	if err := s.c.Send(receiver.pub(), hello); err != nil {
		t.Fatal(err)
	}
	receiver.await(t, "packet from s", packetFrom(s.pub(), hello))
	if err := onlySender.c.Send(s.pub(), []byte("to s")); err != nil {
		t.Fatal(err)
	}
	s.await(t, "packet to s", packetFrom(onlySender.pub(), []byte("to s")))
	s.c.Close()
	m := receiver.await(t, "PeerGone(Disconnected)", peerGone(s.pub())).(derp.PeerGoneMessage)
	if m.Reason != derp.PeerGoneReasonDisconnected {
		t.Fatalf("reason %d, want Disconnected (%d)", m.Reason, derp.PeerGoneReasonDisconnected)
	}
	onlySender.quiet(t, time.Second, "PeerGone to a client that only sent", peerGone(s.pub()))
}

// TestPingPong: derphttp's Ping sends a Ping frame and waits for the Pong
// with the same 8 bytes.
func TestPingPong(t *testing.T) {
	tg := envTarget(t)
	a := newPeer(t, tg.region(insecure), nil)
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), recvTimeout)
		err := a.c.Ping(ctx)
		cancel()
		if err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
	}
}

// TestNotePreferred: NotePreferred frames are accepted without dropping the
// connection; where the server exposes derper's home-connection gauge on
// /debug/varz, the gauge follows the flag.
func TestNotePreferred(t *testing.T) {
	tg := envTarget(t)
	a := newPeer(t, tg.region(insecure), nil)
	base, haveGauge := homeGauge(t, tg)
	for _, pref := range []bool{true, false, true} {
		a.c.NotePreferred(pref)
		ctx, cancel := context.WithTimeout(context.Background(), recvTimeout)
		err := a.c.Ping(ctx) // round trip: the server has processed the frame
		cancel()
		if err != nil {
			t.Fatalf("after NotePreferred(%v): %v", pref, err)
		}
		if !haveGauge {
			continue
		}
		got, _ := homeGauge(t, tg)
		want := base
		if pref {
			want = base + 1
		}
		if got != want {
			t.Fatalf("after NotePreferred(%v): home connections %d, want %d", pref, got, want)
		}
	}
	if !haveGauge {
		t.Log("NOTE: no home-connection gauge on /debug/varz; checked acceptance only")
	}
}

// homeGaugeNames: derper's gauge (tsweb strips the gauge_ prefix; the
// unstripped spelling is accepted too) and tinyderp's name for the same gauge.
var homeGaugeNames = map[string]bool{
	"derp_current_home_connections":       true,
	"derp_gauge_current_home_connections": true,
	"tinyderp_home_connections":           true,
}

// homeGauge reads the home-connection gauge from /debug/varz (loopback is
// allowed to read it on both servers).
func homeGauge(t *testing.T, tg target) (int, bool) {
	t.Helper()
	return varzValue(t, tg, homeGaugeNames)
}

// varzValue reads the first /debug/varz line whose name is in names, as an
// integer; false when the page or the line is missing.
func varzValue(t *testing.T, tg target, names map[string]bool) (int, bool) {
	t.Helper()
	resp, err := insecureHTTP().Get(fmt.Sprintf("https://%s/debug/varz", net.JoinHostPort(tg.host, strconv.Itoa(tg.derpPort))))
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && names[f[0]] {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("bad varz line %q", sc.Text())
			}
			return n, true
		}
	}
	return 0, false
}

// ---- mesh ----

func (tg target) needMesh(t *testing.T) {
	t.Helper()
	if tg.meshKey == "" {
		t.Fatal("INTEROP_MESH_KEY not set (the server must be started with a mesh key)")
	}
}

func meshClient(t *testing.T, hexKey string, watch bool) func(c *derphttp.Client) {
	return func(c *derphttp.Client) {
		if err := setMeshKey(c, hexKey); err != nil {
			t.Fatal(err)
		}
		c.WatchConnectionChanges = watch
	}
}

// TestMeshWatchConns: a mesh-key watcher gets a snapshot that includes
// itself, then PeerPresent (with the client's address and, from v1.70, the
// "regular client" flag) when a client connects and PeerGone when it leaves.
func TestMeshWatchConns(t *testing.T) {
	tg := envTarget(t)
	tg.needMesh(t)
	w := newPeer(t, tg.region(insecure), meshClient(t, tg.meshKey, true))
	w.await(t, "snapshot PeerPresent for the watcher itself", peerPresent(w.pub()))

	x := newPeer(t, tg.region(insecure), nil)
	m := w.await(t, "PeerPresent for a new client", peerPresent(x.pub())).(derp.PeerPresentMessage)
	local, err := x.c.LocalAddr()
	if err != nil {
		t.Fatal(err)
	}
	if m.IPPort != local {
		t.Errorf("PeerPresent address %v, client's own address %v", m.IPPort, local)
	}
	if flags, known := presentFlags(m); known && flags&0x01 == 0 {
		t.Errorf("PeerPresent flags %#x lack PeerPresentIsRegular (0x01)", flags)
	}
	x.c.Close()
	g := w.await(t, "PeerGone for the departed client", peerGone(x.pub())).(derp.PeerGoneMessage)
	if g.Reason != derp.PeerGoneReasonDisconnected {
		t.Fatalf("reason %d, want Disconnected", g.Reason)
	}
}

// TestMeshForwardPacket: a packet a mesh peer forwards on behalf of another
// key is delivered locally with that key as the source.
func TestMeshForwardPacket(t *testing.T) {
	tg := envTarget(t)
	tg.needMesh(t)
	m := newPeer(t, tg.region(insecure), meshClient(t, tg.meshKey, false))
	y := newPeer(t, tg.region(insecure), nil)
	remote := key.NewNode().Public() // a client of the other mesh node
	data := []byte("forwarded across the mesh")
	if err := forwardPacket(m.c, remote, y.pub(), data); err != nil {
		t.Fatal(err)
	}
	y.await(t, "forwarded packet", packetFrom(remote, data))
}

// TestMeshWatchNeedsKey: WatchConns from a client without the right mesh
// key is refused by closing the connection.
func TestMeshWatchNeedsKey(t *testing.T) {
	tg := envTarget(t)
	tg.needMesh(t)
	wrong := strings.Repeat("ab", 32)
	if wrong == strings.ToLower(tg.meshKey) {
		wrong = strings.Repeat("cd", 32)
	}
	w := connectPeer(t, tg.region(insecure), meshClient(t, wrong, true), false)
	select {
	case err := <-w.errs:
		t.Logf("connection ended as expected: %v", err)
	case <-time.After(recvTimeout):
		t.Fatal("server kept a WatchConns connection that has no valid mesh key")
	}
}

// ---- STUN and HTTP ----

// TestSTUN: tailscale's stun package gets its own address back from the
// server's STUN port.
func TestSTUN(t *testing.T) {
	tg := envTarget(t)
	if tg.stunPort <= 0 {
		t.Fatal("INTEROP_STUN_PORT not set")
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	server := &net.UDPAddr{IP: net.ParseIP(tg.host), Port: tg.stunPort}
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	buf := make([]byte, 1500)
	for i := 0; i < 3; i++ {
		tx := stun.NewTxID()
		if _, err := conn.WriteToUDP(stun.Request(tx), server); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(recvTimeout))
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("STUN request %d: %v", i, err)
		}
		if !stun.Is(buf[:n]) {
			t.Fatalf("reply is not STUN: %x", buf[:n])
		}
		gotTx, addr, err := stun.ParseResponse(buf[:n])
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		if gotTx != tx {
			t.Fatalf("txid %x, want %x", gotTx, tx)
		}
		if netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port()) != local {
			t.Fatalf("mapped address %v, our socket is %v", addr, local)
		}
	}
	// Non-STUN datagrams get no answer and do not stop the server.
	if _, err := conn.WriteToUDP([]byte("not a stun packet"), server); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _, err := conn.ReadFromUDP(buf); err == nil {
		t.Fatalf("answer to garbage: %x", buf[:n])
	}
	tx := stun.NewTxID()
	if _, err := conn.WriteToUDP(stun.Request(tx), server); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(recvTimeout))
	n, _, err := conn.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("STUN after garbage: %v", err)
	}
	if gotTx, _, err := stun.ParseResponse(buf[:n]); err != nil || gotTx != tx {
		t.Fatalf("STUN after garbage: tx %x err %v", gotTx, err)
	}
}

// TestNetcheckSTUN: upstream netcheck measures the region by STUN.
func TestNetcheckSTUN(t *testing.T) {
	tg := envTarget(t)
	region := tg.region(func(n *tailcfg.DERPNode) { n.InsecureForTests = true; n.IPv4 = "127.0.0.1" })
	v4, _, ok := netcheckRegion(t, region, false)
	if !ok {
		t.Skipf("not run with %s: %s", clientVersion, netcheckSkipReason)
	}
	if v4 <= 0 {
		t.Fatal("no STUN (IPv4) latency for the region")
	}
}

// TestNetcheckHTTPS: with UDP out of the picture, upstream netcheck measures
// the region over HTTPS (/derp/latency-check on a DERP TLS connection).
func TestNetcheckHTTPS(t *testing.T) {
	tg := envTarget(t)
	region := tg.region(func(n *tailcfg.DERPNode) { n.InsecureForTests = true; n.IPv4 = "127.0.0.1" })
	_, lat, ok := netcheckRegion(t, region, true)
	if !ok {
		t.Skipf("not run with %s: %s", clientVersion, netcheckSkipReason)
	}
	if lat <= 0 {
		t.Fatal("no HTTPS latency for the region")
	}
}

func insecureHTTP() *http.Client {
	return &http.Client{
		Timeout: recvTimeout,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		},
	}
}

// TestGenerate204: the captive-portal endpoint answers 204 and echoes a
// valid X-Tailscale-Challenge as "response <challenge>", and ignores invalid
// ones; on the TLS port and, if the server has one, the plain-HTTP port.
func TestGenerate204(t *testing.T) {
	tg := envTarget(t)
	urls := []string{fmt.Sprintf("https://%s/generate_204", net.JoinHostPort(tg.host, strconv.Itoa(tg.derpPort)))}
	if tg.httpPort > 0 {
		urls = append(urls, fmt.Sprintf("http://%s/generate_204", net.JoinHostPort(tg.host, strconv.Itoa(tg.httpPort))))
	}
	cases := []struct {
		challenge, want string
	}{
		{"ts_127.0.0.1", "response ts_127.0.0.1"},
		{"abc-XYZ_09:.", "response abc-XYZ_09:."},
		{"", ""},
		{"has space", ""},
		{strings.Repeat("a", 65), ""},
		{strings.Repeat("b", 64), "response " + strings.Repeat("b", 64)},
	}
	hc := insecureHTTP()
	for _, u := range urls {
		for _, c := range cases {
			req, err := http.NewRequest("GET", u+"?t="+strconv.FormatInt(time.Now().Unix(), 10), nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.challenge != "" {
				req.Header.Set("X-Tailscale-Challenge", c.challenge)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", u, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				t.Errorf("%s challenge %q: status %d, want 204", u, c.challenge, resp.StatusCode)
			}
			if got := resp.Header.Get("X-Tailscale-Response"); got != c.want {
				t.Errorf("%s challenge %q: X-Tailscale-Response %q, want %q", u, c.challenge, got, c.want)
			}
		}
	}
}
