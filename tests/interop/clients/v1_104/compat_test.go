// Release-specific glue for tailscale.com v1.104.5 (the newest release):
// the mesh key is a typed key.DERPMesh and ForwardPacket takes LoanedBytes.
package interop

import (
	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/types/key"
)

const (
	clientVersion         = "v1.104.5"
	supportsCertNamePin   = true
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
