package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/meshdns/meshdns/registry"
	"github.com/spf13/cobra"
)

// outputFormat is the value of a list command's -o flag. As a flag type it
// makes an unknown format a command-line error.
type outputFormat string

const (
	formatTable outputFormat = "table"
	formatJSON  outputFormat = "json"
)

func (f *outputFormat) String() string { return string(*f) }
func (f *outputFormat) Type() string   { return "format" }
func (f *outputFormat) Set(s string) error {
	switch outputFormat(s) {
	case formatTable, formatJSON:
		*f = outputFormat(s)
		return nil
	}
	return fmt.Errorf("want table or json")
}

// addOutputFlag adds -o to a list command.
func addOutputFlag(c *cobra.Command) *outputFormat {
	f := formatTable
	c.Flags().VarP(&f, "output", "o", "output format: table or json")
	return &f
}

// invalidCell marks, in table output, the value columns of a key whose
// value could not be decoded, so an operator can grep for broken entries.
const invalidCell = "INVALID"

// listing says how one kind of registry object is listed: its value
// columns in a table, and its JSON element. The name columns come from the
// kind (see nameFields).
type listing struct {
	kind    registry.Kind
	columns []string
	cells   func(v any) []string
	entry   func(v any) any
}

// listed is one key read from etcd: its names, and its decoded value or
// why it could not be decoded.
type listed struct {
	key   registry.Key
	value any
	err   error
}

// nameFields are the JSON names of each kind's name fields, in order; they
// match the bulk-load format so list -o json output can be loaded again.
var nameFields = map[registry.Kind][]string{
	registry.KindOrg:     {"name"},
	registry.KindApp:     {"org", "name"},
	registry.KindMachine: {"org", "app", "id"},
	registry.KindPeer:    {"org", "name"},
	registry.KindGateway: {"region"},
	registry.KindRegion:  {"code"},
}

// keyNames returns the names of k in nameFields order.
func keyNames(k registry.Key) []string {
	switch k.Kind {
	case registry.KindApp, registry.KindPeer:
		return []string{k.Org, k.Name}
	case registry.KindMachine:
		return []string{k.Org, k.App, k.Name}
	}
	return []string{k.Name}
}

// looseKey splits a key that registry.ParseKey rejected into names as best
// it can, so that the broken entry can still be shown where it belongs.
func looseKey(kind registry.Kind, path string) registry.Key {
	n := len(nameFields[kind])
	parts := strings.SplitN(strings.TrimPrefix(path, kind.String()+"/"), "/", n)
	for len(parts) < n {
		parts = append(parts, "")
	}
	switch kind {
	case registry.KindApp:
		return registry.Key{Kind: kind, Org: parts[0], App: parts[1], Name: parts[1]}
	case registry.KindPeer:
		return registry.Key{Kind: kind, Org: parts[0], Name: parts[1]}
	case registry.KindMachine:
		return registry.Key{Kind: kind, Org: parts[0], App: parts[1], Name: parts[2]}
	}
	return registry.Key{Kind: kind, Name: parts[0]}
}

// readKeys reads every key below dir (a path below the registry prefix,
// such as "machines/acme/") and decodes it, keeping undecodable entries
// with their error. The result is sorted by names.
func readKeys(ctx context.Context, s *session, prefix string, kind registry.Kind, dir string) ([]listed, error) {
	evs, err := s.w.List(ctx, dir)
	if err != nil {
		return nil, err
	}
	out := make([]listed, 0, len(evs))
	for _, ev := range evs {
		k, err := registry.ParseKey(prefix, ev.Key)
		if err != nil {
			out = append(out, listed{key: looseKey(kind, strings.TrimPrefix(ev.Key, prefix)), err: err})
			continue
		}
		v, err := registry.Decode(k, ev.Value)
		out = append(out, listed{key: k, value: v, err: err})
	}
	// etcd sorts by key bytes, which puts "acme-2/..." before "acme/...";
	// sort by the names themselves.
	slices.SortFunc(out, func(a, b listed) int { return slices.Compare(keyNames(a.key), keyNames(b.key)) })
	return out, nil
}

// print writes rows as a table or as a JSON array.
func (l listing) print(out io.Writer, format outputFormat, rows []listed) error {
	if format == formatJSON {
		return l.printJSON(out, rows)
	}
	return l.printTable(out, rows)
}

// printTable writes a header and one line per row, aligned. An ERROR
// column is added only when some row is invalid, so that the usual output
// stays narrow.
func (l listing) printTable(out io.Writer, rows []listed) error {
	header := make([]string, 0, 4+len(l.columns))
	for _, f := range nameFields[l.kind] {
		header = append(header, strings.ToUpper(f))
	}
	header = append(header, l.columns...)
	anyInvalid := slices.ContainsFunc(rows, func(r listed) bool { return r.err != nil })
	if anyInvalid {
		header = append(header, "ERROR")
	}
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		line := keyNames(r.key)
		if r.err != nil {
			for range l.columns {
				line = append(line, invalidCell)
			}
			line = append(line, r.err.Error())
		} else {
			line = append(line, l.cells(r.value)...)
			if anyInvalid {
				line = append(line, "")
			}
		}
		for i, c := range line {
			// An empty cell would shift the columns for anyone reading
			// the table with awk or cut.
			if c == "" {
				line[i] = "-"
			}
		}
		fmt.Fprintln(tw, strings.Join(line, "\t"))
	}
	return tw.Flush()
}

// printJSON writes an array with the names and value fields of each row;
// an invalid row has its names and an "error" field instead of the value.
func (l listing) printJSON(out io.Writer, rows []listed) error {
	elems := make([]any, 0, len(rows))
	for _, r := range rows {
		if r.err == nil {
			elems = append(elems, l.entry(r.value))
			continue
		}
		elems = append(elems, invalidEntry(nameFields[l.kind], keyNames(r.key), r.err))
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(elems)
}

// invalidEntry builds {"<name field>": "<name>", ..., "error": "..."} with
// the fields in order (a map would sort them).
func invalidEntry(fields, names []string, err error) json.RawMessage {
	var b strings.Builder
	b.WriteByte('{')
	for i, f := range fields {
		writeJSONPair(&b, f, names[i])
		b.WriteByte(',')
	}
	writeJSONPair(&b, "error", err.Error())
	b.WriteByte('}')
	return json.RawMessage(b.String())
}

func writeJSONPair(b *strings.Builder, k, v string) {
	kj, _ := json.Marshal(k) // marshalling a string cannot fail
	vj, _ := json.Marshal(v)
	b.Write(kj)
	b.WriteByte(':')
	b.Write(vj)
}

// command builds the list verb of l's kind. Kinds that live below an org
// take --org, machines also --app; both narrow the etcd range read, except
// --app alone, which filters the machines of every org.
func (l listing) command(g *globalFlags, short, example string) *cobra.Command {
	c := &cobra.Command{
		Use:     "list",
		Short:   short,
		Example: example,
		Args:    cobra.NoArgs,
	}
	format := addOutputFlag(c)
	var org, app string
	below := len(nameFields[l.kind]) - 1 // name levels a filter can fix
	if below >= 1 {
		c.Flags().StringVar(&org, "org", "", "list only this org's entries")
	}
	if below >= 2 {
		c.Flags().StringVar(&app, "app", "", "list only this app's machines")
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		var names []string // the leading names of the listed keys
		if org != "" {
			if err := registry.CheckLabel("org", org); err != nil {
				return err
			}
			names = append(names, org)
		}
		if app != "" {
			if err := registry.CheckLabel("app", app); err != nil {
				return err
			}
			if org != "" {
				names = append(names, app)
			}
		}
		dir := registry.Dir(l.kind, names...)
		return g.withEtcd(cmd.Context(), func(ctx context.Context, s *session) error {
			rows, err := readKeys(ctx, s, g.etcd.Prefix, l.kind, dir)
			if err != nil {
				return err
			}
			if app != "" && org == "" {
				rows = slices.DeleteFunc(rows, func(r listed) bool { return r.key.App != app })
			}
			return l.print(cmd.OutOrStdout(), *format, rows)
		})
	}
	return c
}
