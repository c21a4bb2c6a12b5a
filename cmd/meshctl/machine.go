package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/meshdns/meshdns/registry"
	"github.com/spf13/cobra"
)

// machineEntry is a machine in a load document and in list -o json output.
type machineEntry struct {
	Org string `json:"org"`
	App string `json:"app"`
	ID  string `json:"id"`
	registry.Machine
}

var machineListing = listing{
	kind:    registry.KindMachine,
	columns: []string{"REGION", "STATE", "IP", "PROCESS_GROUP"},
	cells: func(v any) []string {
		m := v.(*registry.Machine)
		return []string{m.Region, m.State, m.IP.String(), m.ProcessGroup}
	},
	entry: func(v any) any {
		m := v.(*registry.Machine)
		return machineEntry{Org: m.Org, App: m.App, ID: m.ID, Machine: *m}
	},
}

func newMachineCmd(g *globalFlags) *cobra.Command {
	return newNoun("machine", "Machines: the hosts that DNS names resolve to",
		newMachinePutCmd(g),
		newMachineStateCmd(g),
		newMachineCheckCmd(g),
		newMachineRmCmd(g),
		machineListing.command(g, "List machines",
			"  meshctl machine list\n  meshctl machine list --org acme --app web -o json"),
	)
}

func newMachinePutCmd(g *globalFlags) *cobra.Command {
	var (
		m        registry.Machine
		ip       string
		metadata []string
		services []string
		ttl      time.Duration
	)
	c := &cobra.Command{
		Use:   "put ID --org ORG --app APP --region R --ip ADDR",
		Short: "Create or replace a machine",
		Long: "Create or replace a machine. The whole value is replaced: flags not given take\n" +
			"their defaults, they do not keep the previous value.\n\n" +
			"With --ttl the machine is attached to a new etcd lease of that TTL and the\n" +
			"lease id is printed (in hex, as etcdctl prints it). meshctl does not keep the\n" +
			"lease alive: whoever runs the machine must (e.g. etcdctl lease keep-alive ID),\n" +
			"or the machine leaves DNS when the lease expires. Without --ttl the machine\n" +
			"stays until removed, and a lease it had is detached.",
		Example: "  meshctl machine put 3d8d9e0b2ee489 --org acme --app web --region ams --ip fdaa:0:18:a7b:1::2\n" +
			"  meshctl machine put e784079b449483 --org acme --app db --region iad --ip fdaa:0:18:a7b:2::2 \\\n" +
			"      --process-group worker --metadata role=primary --ttl 30s\n" +
			"  meshctl machine put 3d8d9e0b2ee489 --org acme --app web --region ams --ip fdaa:0:18:a7b:1::2 \\\n" +
			"      --service http/tcp/8080 --service dns/udp/53",
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m.ID = args[0]
			var err error
			if m.IP, err = parseAddr("ip", ip); err != nil {
				return err
			}
			if m.Metadata, err = parseMetadata(metadata); err != nil {
				return err
			}
			if m.Services, err = parseServices(services); err != nil {
				return err
			}
			if m.ProcessGroup == "" {
				m.ProcessGroup = registry.DefaultProcessGroup
			}
			if err := m.Validate(); err != nil {
				return err
			}
			if ttl != 0 && (ttl < time.Second || ttl%time.Second != 0) {
				return fmt.Errorf("--ttl %s: etcd leases last whole seconds, at least 1s", ttl)
			}
			return g.withEtcd(cmd.Context(), func(ctx context.Context, s *session) error {
				if ttl == 0 {
					return s.w.PutMachine(ctx, m)
				}
				lease, err := s.w.Grant(ctx, ttl)
				if err != nil {
					return err
				}
				if err := s.w.PutMachine(ctx, m, registry.WithLease(lease)); err != nil {
					// A rejected write should leave nothing behind. If the
					// revoke fails too, the unused lease expires by itself.
					s.w.Revoke(ctx, lease)
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%016x\n", int64(lease))
				return err
			})
		},
	}
	f := c.Flags()
	f.StringVar(&m.Org, "org", "", "the machine's org (must exist)")
	f.StringVar(&m.App, "app", "", "the machine's app")
	f.StringVar(&m.Region, "region", "", "the machine's region, three letters, e.g. ams")
	f.StringVar(&ip, "ip", "", "the machine's 6PN address, inside the org's network")
	f.StringVar(&m.State, "state", registry.StateStarted, "machine state, one of "+strings.Join(registry.States, ", "))
	f.StringVar(&m.ProcessGroup, "process-group", registry.DefaultProcessGroup, "the machine's process group")
	f.StringArrayVar(&metadata, "metadata", nil, "metadata as key=value; repeat for more pairs")
	f.StringArrayVar(&services, "service", nil, "a service the machine offers, NAME/PROTOCOL/PORT, e.g. http/tcp/8080 (_http._tcp.<app>.internal SRV); repeat for more")
	f.BoolVar(&m.SkipRegistration, "skip-registration", false, "keep the machine out of every DNS answer")
	f.DurationVar(&ttl, "ttl", 0, "attach the machine to a new lease of this TTL (whole seconds) and print its id")
	requireFlags(c, "org", "app", "region", "ip")
	return c
}

func newMachineStateCmd(g *globalFlags) *cobra.Command {
	var org, app string
	c := &cobra.Command{
		Use:   "state ID STATE --org ORG --app APP",
		Short: "Change a machine's state, keeping the rest of it and its lease",
		Long: "Change a machine's state, keeping the rest of its value and its lease.\n" +
			"States: " + strings.Join(registry.States, ", ") + ".\n" +
			"Only started machines are in AAAA answers.",
		Example: "  meshctl machine state 3d8d9e0b2ee489 stopped --org acme --app web",
		Args:    exactArgs("ID", "STATE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			k := registry.MachineKey(org, app, args[0])
			state := args[1]
			if err := checkKey(k); err != nil {
				return err
			}
			if err := registry.CheckState(state); err != nil {
				return err
			}
			return g.withEtcd(cmd.Context(), func(ctx context.Context, s *session) error {
				return s.w.SetMachineState(ctx, org, app, k.Name, state)
			})
		},
	}
	c.Flags().StringVar(&org, "org", "", "the machine's org")
	c.Flags().StringVar(&app, "app", "", "the machine's app")
	requireFlags(c, "org", "app")
	return c
}

func newMachineCheckCmd(g *globalFlags) *cobra.Command {
	var org, app string
	c := &cobra.Command{
		Use:   "check ID CHECK STATUS --org ORG --app APP",
		Short: "Set one health check of a machine, keeping the rest of it and its lease",
		Long: "Set the status of one health check of a machine (" + strings.Join(registry.CheckStatuses, ", ") + "),\n" +
			"keeping its other checks, the rest of its value and its lease.\n" +
			"A started machine with a critical check drops out of its app's AAAA names and\n" +
			"SRV answers, unless none of their machines is healthy (then all answer).",
		Example: "  meshctl machine check 3d8d9e0b2ee489 http critical --org acme --app web",
		Args:    exactArgs("ID", "CHECK", "STATUS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			k := registry.MachineKey(org, app, args[0])
			if err := checkKey(k); err != nil {
				return err
			}
			if err := registry.CheckCheckName(args[1]); err != nil {
				return err
			}
			if err := registry.CheckCheckStatus(args[1], args[2]); err != nil {
				return err
			}
			return g.withEtcd(cmd.Context(), func(ctx context.Context, s *session) error {
				return s.w.SetMachineCheck(ctx, org, app, k.Name, args[1], args[2])
			})
		},
	}
	c.Flags().StringVar(&org, "org", "", "the machine's org")
	c.Flags().StringVar(&app, "app", "", "the machine's app")
	requireFlags(c, "org", "app")
	return c
}

// parseServices reads --service NAME/PROTOCOL/PORT values.
func parseServices(vals []string) ([]registry.Service, error) {
	var out []registry.Service
	for _, v := range vals {
		parts := strings.Split(v, "/")
		if len(parts) != 3 {
			return nil, fmt.Errorf("--service %q: want NAME/PROTOCOL/PORT, e.g. http/tcp/8080", v)
		}
		port, err := strconv.Atoi(parts[2])
		if err != nil {
			return nil, fmt.Errorf("--service %q: port %q is not a number (want NAME/PROTOCOL/PORT, e.g. http/tcp/8080)", v, parts[2])
		}
		out = append(out, registry.Service{Name: parts[0], Protocol: parts[1], Port: port})
	}
	if err := registry.CheckServices(out); err != nil {
		return nil, fmt.Errorf("--service: %w", err)
	}
	return out, nil
}

func newMachineRmCmd(g *globalFlags) *cobra.Command {
	var org, app string
	c := &cobra.Command{
		Use:     "rm ID --org ORG --app APP",
		Short:   "Remove a machine",
		Example: "  meshctl machine rm 3d8d9e0b2ee489 --org acme --app web",
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			k := registry.MachineKey(org, app, args[0])
			if err := checkKey(k); err != nil {
				return err
			}
			return g.withEtcd(cmd.Context(), func(ctx context.Context, s *session) error {
				return s.w.Delete(ctx, k)
			})
		},
	}
	c.Flags().StringVar(&org, "org", "", "the machine's org")
	c.Flags().StringVar(&app, "app", "", "the machine's app")
	requireFlags(c, "org", "app")
	return c
}
