package main

import (
	"context"
	"strconv"

	"github.com/meshdns/meshdns/registry"
	"github.com/spf13/cobra"
)

// regionEntry is a region in a load document and in list -o json output.
type regionEntry struct {
	Code string `json:"code"`
	registry.Region
}

var regionListing = listing{
	kind:    registry.KindRegion,
	columns: []string{"NAME", "LAT", "LON"},
	cells: func(v any) []string {
		r := v.(*registry.Region)
		return []string{r.Name, strconv.FormatFloat(r.Lat, 'f', -1, 64), strconv.FormatFloat(r.Lon, 'f', -1, 64)}
	},
	entry: func(v any) any {
		r := v.(*registry.Region)
		return regionEntry{Code: r.Code, Region: *r}
	},
}

func newRegionCmd(g *globalFlags) *cobra.Command {
	return newNoun("region", "Regions added to or overriding the built-in region table",
		newRegionPutCmd(g),
		newRegionRmCmd(g),
		regionListing.command(g, "List regions in the registry (not the built-in ones)", "  meshctl region list"),
	)
}

func newRegionPutCmd(g *globalFlags) *cobra.Command {
	var r registry.Region
	c := &cobra.Command{
		Use:   "put CODE --lat LAT --lon LON [--name NAME]",
		Short: "Add a region or override a built-in one's coordinates",
		Long: "Add a region or override a built-in one's coordinates, which order AAAA answers\n" +
			"nearest first.",
		Example: "  meshctl region put ams --lat 52.31 --lon 4.77 --name Amsterdam",
		Args:    exactArgs("CODE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r.Code = args[0]
			if err := r.Validate(); err != nil {
				return err
			}
			return g.withEtcd(cmd.Context(), func(ctx context.Context, s *session) error {
				return s.w.PutRegion(ctx, r)
			})
		},
	}
	c.Flags().Float64Var(&r.Lat, "lat", 0, "latitude in degrees, -90 to 90")
	c.Flags().Float64Var(&r.Lon, "lon", 0, "longitude in degrees, -180 to 180")
	c.Flags().StringVar(&r.Name, "name", "", "human-readable name, e.g. Amsterdam")
	requireFlags(c, "lat", "lon")
	return c
}

func newRegionRmCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "rm CODE",
		Short:   "Remove a region from the registry (a built-in one falls back to its table entry)",
		Example: "  meshctl region rm ams",
		Args:    exactArgs("CODE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			k := registry.RegionKey(args[0])
			if err := checkKey(k); err != nil {
				return err
			}
			return g.withEtcd(cmd.Context(), func(ctx context.Context, s *session) error {
				return s.w.Delete(ctx, k)
			})
		},
	}
}
