package main

import (
	"context"

	"github.com/meshdns/meshdns/registry"
	"github.com/spf13/cobra"
)

// peerEntry is a WireGuard peer in a load document and in list -o json output.
type peerEntry struct {
	Org  string `json:"org"`
	Name string `json:"name"`
	registry.Peer
}

var peerListing = listing{
	kind:    registry.KindPeer,
	columns: []string{"IP", "REGION", "PUBLIC_KEY"},
	cells: func(v any) []string {
		p := v.(*registry.Peer)
		return []string{p.IP.String(), p.Region, p.PublicKey}
	},
	entry: func(v any) any {
		p := v.(*registry.Peer)
		return peerEntry{Org: p.Org, Name: p.Name, Peer: *p}
	},
}

func newPeerCmd(g *globalFlags) *cobra.Command {
	return newNoun("peer", "WireGuard peers of an org (named <peer>._peer.internal)",
		newPeerCreateCmd(g),
		newPeerPutCmd(g),
		newPeerRmCmd(g),
		peerListing.command(g, "List WireGuard peers", "  meshctl peer list --org acme"),
	)
}

func newPeerPutCmd(g *globalFlags) *cobra.Command {
	var (
		p  registry.Peer
		ip string
	)
	c := &cobra.Command{
		Use:   "put NAME --org ORG --ip ADDR [--region R] [--public-key K]",
		Short: "Create or replace a WireGuard peer",
		Long: "Create or replace a WireGuard peer. Peers named interactive-* are left out of\n" +
			"the _peer.internal TXT list but still resolve by name.",
		Example: "  meshctl peer put laptop --org acme --ip fdaa:0:18:a7b:9::2 --region ams \\\n" +
			"      --public-key yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=",
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Name = args[0]
			var err error
			if p.IP, err = parseAddr("ip", ip); err != nil {
				return err
			}
			if err := p.Validate(); err != nil {
				return err
			}
			return g.withEtcd(cmd.Context(), func(ctx context.Context, s *session) error {
				return s.w.PutPeer(ctx, p)
			})
		},
	}
	f := c.Flags()
	f.StringVar(&p.Org, "org", "", "the peer's org (must exist)")
	f.StringVar(&ip, "ip", "", "the peer's 6PN address, inside the org's network")
	f.StringVar(&p.Region, "region", "", "the region the peer connects through, e.g. ams")
	f.StringVar(&p.PublicKey, "public-key", "", "the peer's WireGuard public key (base64)")
	requireFlags(c, "org", "ip")
	return c
}

func newPeerRmCmd(g *globalFlags) *cobra.Command {
	var org string
	c := &cobra.Command{
		Use:     "rm NAME --org ORG",
		Short:   "Remove a WireGuard peer",
		Example: "  meshctl peer rm laptop --org acme",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			k := registry.PeerKey(org, args[0])
			if err := checkKey(k); err != nil {
				return err
			}
			return g.withEtcd(cmd.Context(), func(ctx context.Context, s *session) error {
				return s.w.Delete(ctx, k)
			})
		},
	}
	c.Flags().StringVar(&org, "org", "", "the peer's org")
	requireFlags(c, "org")
	return c
}
