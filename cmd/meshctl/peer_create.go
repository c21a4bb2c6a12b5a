package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/meshdns/meshdns/registry"
)

func newPeerCreateCmd(g *globalFlags) *cobra.Command {
	var org, region string
	c := &cobra.Command{
		Use:   "create NAME --org ORG --region REGION",
		Short: "Create a WireGuard peer with a new key pair and print its client configuration",
		Long: "Create a WireGuard peer: allocate the next free address in the org's peer\n" +
			"subnet <network>:fffe::/64, generate a key pair, register the peer with its\n" +
			"public key, and print a wg-quick configuration that reaches the org's network\n" +
			"through the WireGuard gateway of REGION (see meshctl gateway put), with\n" +
			"DNS = <network>::3. The private key is printed once and stored nowhere;\n" +
			"redirect the output to a file only you can read.\n\n" +
			"An existing peer of that name is an error: remove it first with peer rm.\n" +
			"Peers named interactive-* resolve by name but stay out of _peer.internal.",
		Example: "  (umask 077; meshctl peer create laptop --org acme --region ams > wg-acme.conf)\n" +
			"  wg-quick up ./wg-acme.conf",
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := firstError(registry.CheckLabel("org", org), registry.CheckLabel("peer", name), registry.CheckRegionCode(region)); err != nil {
				return err
			}
			keys, err := newWGKeyPair(cryptoRand)
			if err != nil {
				return err
			}
			var conf wgClientConfig
			err = g.withEtcd(cmd.Context(), func(ctx context.Context, s *session) error {
				conf, err = createPeer(ctx, s.w, org, name, region, keys)
				return err
			})
			if err != nil {
				return err
			}
			return conf.write(cmd.OutOrStdout())
		},
	}
	f := c.Flags()
	f.StringVar(&org, "org", "", "the peer's org (must exist)")
	f.StringVar(&region, "region", "", "the region whose WireGuard gateway the peer connects through")
	requireFlags(c, "org", "region")
	return c
}

// firstError returns the first non-nil error.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
