//go:build ts_debug_websockets

// DERP over WebSocket with upstream's own client. Built with the ts_debug_websockets tag
// and run with TS_DEBUG_DERP_WS_CLIENT=1 (run.sh's "websocket" part), derphttp dials
// wss://HOST:PORT/derp with subprotocol "derp" (coder/websocket, wrapped by
// net/wsconn) instead of the HTTP upgrade; every test in the binary then runs over
// WebSocket. TestWebSocketTransport proves that this path is the one taken.
package interop

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// wsAcceptNames: the server's count of accepted DERP-over-WebSocket connections
// (derper's expvar and tinyderp's counter).
var wsAcceptNames = map[string]bool{
	"derp_websocket_accepts":           true,
	"tinyderp_websocket_accepts_total": true,
}

func wsAccepts(t *testing.T, tg target) (int, bool) {
	t.Helper()
	return varzValue(t, tg, wsAcceptNames)
}

// TestWebSocketTransport: the client logs that it connects by WebSocket, logs in,
// answers a ping, and the server counts one more WebSocket accept.
func TestWebSocketTransport(t *testing.T) {
	if os.Getenv("TS_DEBUG_DERP_WS_CLIENT") != "1" {
		t.Fatal("this binary is for the WebSocket run: set TS_DEBUG_DERP_WS_CLIENT=1")
	}
	tg := envTarget(t)
	before, haveCounter := wsAccepts(t, tg)
	var mu sync.Mutex
	var sawWebSocket bool
	logf := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		if strings.Contains(line, "connecting websocket to") {
			mu.Lock()
			sawWebSocket = true
			mu.Unlock()
		}
		t.Log(line)
	}
	region := tg.region(nil)
	p := &peer{priv: key.NewNode()}
	p.msgs = make(chan derp.ReceivedMessage, recvQueueDepth)
	p.errs = make(chan error, 1)
	p.c = derphttp.NewRegionClient(p.priv, logf, newNetMon(), func() *tailcfg.DERPRegion { return region })
	t.Cleanup(func() { p.c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), recvTimeout)
	defer cancel()
	if err := p.c.Connect(ctx); err != nil {
		t.Fatalf("connect over WebSocket: %v", err)
	}
	go p.loop()
	if err := p.c.Ping(ctx); err != nil {
		t.Fatalf("ping over WebSocket: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !sawWebSocket {
		t.Fatal("derphttp did not take its WebSocket path (built without ts_debug_websockets?)")
	}
	if got := p.c.ServerPublicKey(); got != tg.expectedServerKey(t) {
		t.Fatalf("server key %v, want %v", got, tg.expectedServerKey(t))
	}
	if !haveCounter {
		t.Log("NOTE: no WebSocket accept counter on /debug/varz; checked the client side only")
		return
	}
	after, _ := wsAccepts(t, tg)
	if after != before+1 {
		t.Fatalf("server WebSocket accepts %d -> %d, want one more", before, after)
	}
	t.Logf("NOTE: over WebSocket; server accepts %d -> %d", before, after)
}
