package main

import (
	"context"

	"github.com/meshdns/meshdns/registry"
	"github.com/spf13/cobra"
)

// gatewayEntry is a gateway in a load document and in list -o json output.
type gatewayEntry struct {
	Region string `json:"region"`
	registry.Gateway
}

var gatewayListing = listing{
	kind:    registry.KindGateway,
	columns: []string{"ENDPOINT", "PUBLIC_KEY"},
	cells: func(v any) []string {
		gw := v.(*registry.Gateway)
		return []string{gw.Endpoint, gw.PublicKey}
	},
	entry: func(v any) any {
		gw := v.(*registry.Gateway)
		return gatewayEntry{Region: gw.Region, Gateway: *gw}
	},
}

func newGatewayCmd(g *globalFlags) *cobra.Command {
	return newNoun("gateway", "WireGuard gateways, one per region",
		newGatewayPutCmd(g),
		newGatewayRmCmd(g),
		gatewayListing.command(g, "List WireGuard gateways", "  meshctl gateway list"),
	)
}

func newGatewayPutCmd(g *globalFlags) *cobra.Command {
	var gw registry.Gateway
	c := &cobra.Command{
		Use:   "put REGION --endpoint ADDR:PORT --public-key K",
		Short: "Create or replace the WireGuard gateway of a region",
		Example: "  meshctl gateway put ams --endpoint 203.0.113.7:51820 \\\n" +
			"      --public-key xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
		Args: exactArgs("REGION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			gw.Region = args[0]
			if err := gw.Validate(); err != nil {
				return err
			}
			return g.withEtcd(cmd.Context(), func(ctx context.Context, s *session) error {
				return s.w.PutGateway(ctx, gw)
			})
		},
	}
	c.Flags().StringVar(&gw.Endpoint, "endpoint", "", "the gateway's public WireGuard endpoint, address:port")
	c.Flags().StringVar(&gw.PublicKey, "public-key", "", "the gateway's WireGuard public key (base64)")
	requireFlags(c, "endpoint", "public-key")
	return c
}

func newGatewayRmCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "rm REGION",
		Short:   "Remove the WireGuard gateway of a region",
		Example: "  meshctl gateway rm ams",
		Args:    exactArgs("REGION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			k := registry.GatewayKey(args[0])
			if err := checkKey(k); err != nil {
				return err
			}
			return g.withEtcd(cmd.Context(), func(ctx context.Context, s *session) error {
				return s.w.Delete(ctx, k)
			})
		},
	}
}
