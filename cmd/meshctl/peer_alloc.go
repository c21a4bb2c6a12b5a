package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/meshdns/meshdns/registry"
)

// Peer addresses. Every org's /48 reserves one /64 for WireGuard peers,
// <network>:fffe::/64 (fdaa:0:18:fffe::/64 for fdaa:0:18::/48), so peers
// do not collide with machine addresses, which the writers refuse there
// (raw writes could still put one there: docs/addresses.md), nor with
// the org's DNS address <network>::3 in subnet 0. Inside it,
// addresses are handed out from ::2 upwards, taking the lowest one no peer
// of the org holds (registry.NextPeerAddr); the registry's writer
// allocates and writes them (registry.Writer.CreatePeer).
var (
	peerSubnet   = registry.PeerSubnet
	nextPeerAddr = registry.NextPeerAddr
)

// orgDNSAddr is an org's DNS/API address, <network>::3, where its WireGuard
// clients ask (SPEC §1).
func orgDNSAddr(network netip.Prefix) netip.Addr {
	b := network.Masked().Addr().As16()
	b[15] = 3
	return netip.AddrFrom16(b)
}

// createPeer registers a new peer of org with the public key of keys at
// the next free address (registry.Writer.CreatePeer, which makes sure two
// concurrent creates never get the same one) and returns the client
// configuration to print. Its errors say which meshctl command fixes them.
func createPeer(ctx context.Context, w *registry.Writer, org, name, region string, keys wgKeyPair) (wgClientConfig, error) {
	created, err := w.CreatePeer(ctx, org, name, region, keys.Public)
	switch {
	case errors.Is(err, registry.ErrExists):
		return wgClientConfig{}, fmt.Errorf("%w (remove it first with meshctl peer rm %s --org %s)", err, name, org)
	case errors.Is(err, registry.ErrNoGateway):
		return wgClientConfig{}, fmt.Errorf("%w (register one with meshctl gateway put %s --endpoint ADDR:PORT --public-key KEY)", err, region)
	case err != nil:
		return wgClientConfig{}, err
	}
	return wgClientConfig{
		Org: org, Peer: name, Region: region, PrivateKey: keys.Private,
		Address: created.Peer.IP, DNS: orgDNSAddr(created.Network), Gateway: created.Gateway, AllowedIPs: created.Network,
	}, nil
}
