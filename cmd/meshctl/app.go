package main

import (
	"context"

	"github.com/meshdns/meshdns/registry"
	"github.com/spf13/cobra"
)

// appEntry is an app in a load document and in list -o json output.
type appEntry struct {
	Org  string `json:"org"`
	Name string `json:"name"`
	registry.AppValue
}

var appListing = listing{
	kind:    registry.KindApp,
	columns: []string{"FLYCAST"},
	cells: func(v any) []string {
		a := v.(*registry.AppValue)
		if !a.Flycast.IsValid() {
			return []string{""}
		}
		return []string{a.Flycast.String()}
	},
	entry: func(v any) any {
		a := v.(*registry.AppValue)
		return appEntry{Org: a.Org, Name: a.Name, AppValue: *a}
	},
}

func newAppCmd(g *globalFlags) *cobra.Command {
	return newNoun("app", "Apps of an org (an app also exists while it has machines)",
		newAppPutCmd(g),
		newAppRmCmd(g),
		appListing.command(g, "List apps that have an app key", "  meshctl app list --org acme"),
	)
}

func newAppPutCmd(g *globalFlags) *cobra.Command {
	var org, flycast string
	c := &cobra.Command{
		Use:     "put NAME --org ORG [--flycast ADDR]",
		Short:   "Create an app or change its Flycast address",
		Example: "  meshctl app put web --org acme --flycast fdaa:0:18:0:1::5",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			fc, err := parseAddr("flycast", flycast)
			if err != nil {
				return err
			}
			a := registry.AppValue{Org: org, Name: args[0], Flycast: fc}
			if err := a.Validate(); err != nil {
				return err
			}
			return g.withEtcd(cmd.Context(), func(ctx context.Context, s *session) error {
				return s.w.PutApp(ctx, a)
			})
		},
	}
	c.Flags().StringVar(&org, "org", "", "the app's org (must exist)")
	c.Flags().StringVar(&flycast, "flycast", "", "the app's private proxy address, inside the org's network")
	requireFlags(c, "org")
	return c
}

func newAppRmCmd(g *globalFlags) *cobra.Command {
	var org string
	c := &cobra.Command{
		Use:   "rm NAME --org ORG",
		Short: "Remove an app's key (its machines stay)",
		Long: "Remove an app's key and with it the app's Flycast address. The app's machines\n" +
			"are not removed, and keep the app in DNS until they are (meshctl machine rm).",
		Example: "  meshctl app rm web --org acme",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			k := registry.AppKey(org, args[0])
			if err := checkKey(k); err != nil {
				return err
			}
			return g.withEtcd(cmd.Context(), func(ctx context.Context, s *session) error {
				return s.w.Delete(ctx, k)
			})
		},
	}
	c.Flags().StringVar(&org, "org", "", "the app's org")
	requireFlags(c, "org")
	return c
}
