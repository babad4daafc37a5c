// Release-specific glue for tailscale.com v1.58.2, an older client still in
// the field: no CertName pinning, no PeerPresent flags, optional netmon.
package interop

import (
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

const (
	clientVersion         = "v1.58.2"
	supportsCertNamePin   = false
	netcheckSkipReason    = "its netcheck runs captive-portal detection and port mapping beyond loopback"
	pinBrokenWithMetaCert = false
)

func newNetMon() *netmon.Monitor { return nil }

func setMeshKey(c *derphttp.Client, hexKey string) error {
	c.MeshKey = hexKey
	return nil
}

func forwardPacket(c *derphttp.Client, from, to key.NodePublic, b []byte) error {
	return c.ForwardPacket(from, to, b)
}

// presentFlags: PeerPresent flags arrived in v1.70; this client drops them.
func presentFlags(m derp.PeerPresentMessage) (byte, bool) { return 0, false }

// netcheckRegion: not run with this release, because its netcheck runs captive-portal detection and port mapping beyond loopback; the
// v1.104 run and the tailnet part cover netcheck.
func netcheckRegion(t *testing.T, region *tailcfg.DERPRegion, viaHTTPS bool) (v4, any time.Duration, supported bool) {
	return 0, 0, false
}
