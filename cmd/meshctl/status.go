package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshdns/meshdns/metrics"
)

func newStatusCmd(g *globalFlags) *cobra.Command {
	var server string
	c := &cobra.Command{
		Use:   "status --server HOST:PORT",
		Short: "Show a running meshdns's status page in the terminal",
		Long: "Fetch the status page of a running meshdns (its --http listener, loopback by\n" +
			"default) and print it: readiness, etcd, registry counts, propagation, queries by\n" +
			"response code, reloads and the per-org summary. -o json prints the page's JSON.",
		Example: "  meshctl status --server 127.0.0.1:9153",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, _, err := net.SplitHostPort(server); err != nil {
				return fmt.Errorf("--server %q: want HOST:PORT of meshdns's --http listener, e.g. 127.0.0.1:9153", server)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			raw, err := fetchStatus(ctx, server)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if *cmd.Flag("output").Value.(*outputFormat) == formatJSON {
				_, err := out.Write(raw)
				return err
			}
			var d metrics.StatusData
			if err := json.Unmarshal(raw, &d); err != nil {
				return fmt.Errorf("status of %s: not a meshdns status page: %w", server, err)
			}
			return printStatus(out, server, &d)
		},
	}
	c.Flags().StringVar(&server, "server", "127.0.0.1:9153", "meshdns's --http address, HOST:PORT")
	addOutputFlag(c)
	return c
}

// fetchStatus GETs http://server/?format=json.
func fetchStatus(ctx context.Context, server string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+server+"/?format=json", nil)
	if err != nil {
		return nil, fmt.Errorf("--server %q: %w", server, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w (is meshdns running with --http %s?)", server, err, server)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", server, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status of %s: HTTP %s: %s (an older meshdns without the status page?)", server, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

func secsText(s *float64, suffix string) string {
	if s == nil {
		return "never"
	}
	return time.Duration(*s*float64(time.Second)).Round(time.Millisecond).String() + suffix
}

// printStatus prints the page as text, a section a paragraph.
func printStatus(out io.Writer, server string, d *metrics.StatusData) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
	state := "READY"
	if !d.Ready {
		state = "NOT READY"
	}
	p("meshdns %s at %s: %s (%s)", d.Version, server, state, d.Reason)
	p("")
	e := d.Etcd
	p("etcd\t%s", strings.Join(e.Endpoints, ", "))
	p("  connection\t%s", e.State)
	p("  watch revision\t%d", e.Revision)
	p("  last event\t%s", secsText(e.SinceLastEvent, " ago"))
	p("  last contact\t%s", secsText(e.SinceLastContact, " ago"))
	p("  snapshot age\t%s", secsText(e.SnapshotAge, ""))
	if e.LastError != "" {
		p("  last error\t%s", e.LastError)
	}
	p("")
	r := d.Registry
	p("registry\t%d orgs, %d apps, %d machines started of %d deployed, %d peers, %d invalid values",
		r.Orgs, r.Apps, r.MachinesStarted, r.MachinesDeployed, r.Peers, r.Invalid)
	for _, v := range d.Invalid {
		p("  invalid\t%s\t%s", v.Key, v.Reason)
	}
	pr := d.Propagation
	if pr.Count == 0 {
		p("propagation\tno writes measured yet")
	} else {
		p("propagation\t%d writes measured; p50 %s, p90 %s, p99 %s", pr.Count, secsText(pr.P50, ""), secsText(pr.P90, ""), secsText(pr.P99, ""))
	}
	var qs []string
	for _, s := range d.Queries.Series {
		rate := 0.0
		if n := len(s.Points); n > 0 {
			rate = s.Points[n-1].PerSecond
		}
		qs = append(qs, fmt.Sprintf("%s %.0f (%.1f/s)", s.Rcode, d.Queries.Totals[s.Rcode], rate))
	}
	if len(qs) == 0 {
		qs = []string{"none yet"}
	}
	p("queries\t%s", strings.Join(qs, ", "))
	s := d.Sync
	p("sync\t%d full loads, %d watch restarts, %d reconciles, %d drift keys", s.Loads, s.WatchRestarts, s.Reconciles, s.Drift)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\norgs (%d", d.OrgsTotal)
	if d.OrgsTotal > len(d.Orgs) {
		fmt.Fprintf(out, ", the first %d shown", len(d.Orgs))
	}
	fmt.Fprintln(out, ")")
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tNETWORK\tAPPS\tMACHINES\tSTARTED\tPEERS\tSERIAL")
	for _, o := range d.Orgs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", o.Name, o.Network, o.Apps, o.Machines, o.Started, o.Peers, o.Serial)
	}
	return tw.Flush()
}
