package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/meshdns/meshdns/registry"
	"github.com/spf13/cobra"
)

// orgEntry is an org in a load document and in list -o json output.
type orgEntry struct {
	Name string `json:"name"`
	registry.OrgValue
}

var orgListing = listing{
	kind:    registry.KindOrg,
	columns: []string{"NETWORK"},
	cells:   func(v any) []string { return []string{v.(*registry.OrgValue).Network.String()} },
	entry: func(v any) any {
		o := v.(*registry.OrgValue)
		return orgEntry{Name: o.Name, OrgValue: *o}
	},
}

func newOrgCmd(g *globalFlags) *cobra.Command {
	return newNoun("org", "Organisations: a name and one /48 network each",
		newOrgPutCmd(g),
		newOrgRmCmd(g),
		orgListing.command(g, "List orgs and their networks", "  meshctl org list\n  meshctl org list -o json"),
	)
}

func newOrgPutCmd(g *globalFlags) *cobra.Command {
	var network string
	c := &cobra.Command{
		Use:   "put NAME --network PREFIX",
		Short: "Create an org or change its network",
		Long: "Create an org or change its network. The network is an IPv6 /48 inside fdaa::/16\n" +
			"that no other org holds.",
		Example: "  meshctl org put acme --network fdaa:0:18::/48",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := parseNetwork(network)
			if err != nil {
				return err
			}
			o := registry.OrgValue{Name: args[0], Network: n}
			if err := o.Validate(); err != nil {
				return err
			}
			return g.withEtcd(cmd.Context(), func(ctx context.Context, s *session) error {
				return s.w.PutOrg(ctx, o)
			})
		},
	}
	c.Flags().StringVar(&network, "network", "", "the org's network, an IPv6 /48 inside fdaa::/16, e.g. fdaa:0:18::/48")
	requireFlags(c, "network")
	return c
}

func newOrgRmCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Short:   "Remove an org with all its apps, machines and peers",
		Example: "  meshctl org rm acme",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := registry.CheckLabel("org", name); err != nil {
				return err
			}
			return g.withEtcd(cmd.Context(), func(ctx context.Context, s *session) error {
				// DeleteOrg succeeds even when there is nothing to delete;
				// a mistyped name must not look like a removal. An org
				// whose value is broken is still removed.
				if _, err := s.w.Get(ctx, registry.OrgKey(name)); errors.Is(err, registry.ErrNotFound) {
					return fmt.Errorf("org %q: not found; nothing removed (see meshctl org list)", name)
				}
				return s.w.DeleteOrg(ctx, name)
			})
		},
	}
}
