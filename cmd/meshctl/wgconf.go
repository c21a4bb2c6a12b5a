package main

import (
	"fmt"
	"io"
	"net/netip"

	"github.com/meshdns/meshdns/registry"
)

// wgKeepalive is the PersistentKeepalive of printed configurations: it
// keeps the NAT mapping of a client behind a home router open, so the
// gateway can reach it (wg-quick's documentation suggests 25 s).
const wgKeepalive = 25

// wgClientConfig is what a WireGuard client needs to join its org's network
// through a region's gateway.
type wgClientConfig struct {
	Org, Peer, Region string
	PrivateKey        string
	Address           netip.Addr // the peer's 6PN address
	DNS               netip.Addr // the org's <network>::3
	Gateway           registry.Gateway
	AllowedIPs        netip.Prefix // the org's /48
}

// write prints the configuration in the wg-quick(8) format, which the
// WireGuard apps import as is. Comment lines start with '#', which every
// WireGuard configuration reader skips.
func (c wgClientConfig) write(w io.Writer) error {
	_, err := fmt.Fprintf(w, `# WireGuard peer %s of org %s, through the %s gateway.
# Holds the peer's private key, which is not stored anywhere else: keep it secret.
[Interface]
PrivateKey = %s
Address = %s/128
DNS = %s

[Peer]
PublicKey = %s
Endpoint = %s
AllowedIPs = %s
PersistentKeepalive = %d
`, c.Peer, c.Org, c.Region, c.PrivateKey, c.Address, c.DNS,
		c.Gateway.PublicKey, c.Gateway.Endpoint, c.AllowedIPs, wgKeepalive)
	return err
}
