// Release-specific glue for tailscale.com v1.104.5 (the newest release):
// the mesh key is a typed key.DERPMesh and ForwardPacket takes LoanedBytes.
package interop

import (
	"context"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netcheck"
	"tailscale.com/net/netmon"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

const (
	clientVersion         = "v1.104.5"
	supportsCertNamePin   = true
	netcheckSkipReason    = ""
	pinBrokenWithMetaCert = false
)

func newNetMon() *netmon.Monitor { return netmon.NewStatic() }

func setMeshKey(c *derphttp.Client, hexKey string) error {
	k, err := key.ParseDERPMesh(hexKey)
	if err != nil {
		return err
	}
	c.MeshKey = k
	return nil
}

func forwardPacket(c *derphttp.Client, from, to key.NodePublic, b []byte) error {
	return c.ForwardPacket(from, to, derp.LoanBytes(b))
}

func presentFlags(m derp.PeerPresentMessage) (byte, bool) { return byte(m.Flags), true }

// netcheckRegion runs upstream netcheck against region alone, either by
// HTTPS only (what clients fall back to when UDP is blocked) or by STUN only.
// Captive-portal detection and port mapping would reach past loopback; the
// first is not linked into this binary (checked) and the second is off (nil
// PortMapper, SkipExternalNetwork).
func netcheckRegion(t *testing.T, region *tailcfg.DERPRegion, viaHTTPS bool) (v4, any time.Duration, supported bool) {
	t.Helper()
	if netcheck.HookStartCaptivePortalDetection.IsSet() {
		t.Fatal("captive portal detection is linked in; it would probe beyond loopback")
	}
	c := &netcheck.Client{NetMon: netmon.NewStatic(), Logf: t.Logf, SkipExternalNetwork: true}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := &netcheck.GetReportOpts{OnlySTUN: !viaHTTPS, OnlyTCP443: viaHTTPS}
	if !viaHTTPS {
		if err := c.Standalone(ctx, "127.0.0.1:0"); err != nil {
			// The udp6 half cannot bind 127.0.0.1; udp4 is what is needed.
			t.Logf("netcheck standalone: %v", err)
		}
	}
	dm := &tailcfg.DERPMap{Regions: map[tailcfg.DERPRegionID]*tailcfg.DERPRegion{region.RegionID: region}}
	r, err := c.GetReport(ctx, dm, opts)
	if err != nil {
		t.Fatalf("netcheck: %v", err)
	}
	t.Logf("netcheck report: UDP=%v RegionLatency=%v RegionV4Latency=%v", r.UDP, r.RegionLatency, r.RegionV4Latency)
	return r.RegionV4Latency[region.RegionID], r.RegionLatency[region.RegionID], true
}
