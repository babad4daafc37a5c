// Release-specific glue for tailscale.com v1.58.2, an older client still in
// the field: no CertName pinning, no PeerPresent flags, optional netmon.
package interop

import (
	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/types/key"
)

const (
	clientVersion         = "v1.58.2"
	supportsCertNamePin   = false
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
