// Release-specific glue for tailscale.com v1.82.5: the first release line with
// sha256-raw CertName pinning, whose pin check still counts the meta cert.
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
	clientVersion         = "v1.82.5"
	supportsCertNamePin   = true
	netcheckSkipReason    = "its netcheck runs captive-portal detection against public URLs"
	pinBrokenWithMetaCert = true
)

func newNetMon() *netmon.Monitor { return netmon.NewStatic() }

func setMeshKey(c *derphttp.Client, hexKey string) error {
	c.MeshKey = hexKey
	return nil
}

func forwardPacket(c *derphttp.Client, from, to key.NodePublic, b []byte) error {
	return c.ForwardPacket(from, to, b)
}

func presentFlags(m derp.PeerPresentMessage) (byte, bool) { return byte(m.Flags), true }

// netcheckRegion: not run with this release, because its netcheck runs captive-portal detection against Tailscale's public URLs; the
// v1.104 run and the tailnet part cover netcheck.
func netcheckRegion(t *testing.T, region *tailcfg.DERPRegion, viaHTTPS bool) (v4, any time.Duration, supported bool) {
	return 0, 0, false
}
