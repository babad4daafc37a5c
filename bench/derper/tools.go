//go:build tools

// Package derperbench pins upstream derper for the side-by-side benchmark; the build
// script runs `go build tailscale.com/cmd/derper` inside this module. The only change
// from the release's own requirements is the setec version (see go.mod).
package derperbench
