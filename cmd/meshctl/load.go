package main

import (
	"bytes"
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/meshdns/meshdns/registry"
	"github.com/spf13/cobra"
)

func newLoadCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "load FILE",
		Short: "Write many entries at once from a JSON document (- reads stdin)",
		Long: "Write many registry entries at once from a JSON document (see README.md for\n" +
			"the format). Every entry is checked before anything is written; a document with\n" +
			"one bad entry or one unknown field writes nothing. Entries are then written in\n" +
			"transactions of up to 128 keys, orgs first. Loading replaces existing entries of\n" +
			"the same names and is safe to repeat, e.g. after a failure half-way.",
		Example: "  meshctl load registry.json\n  generate-registry | meshctl load -",
		Args:    exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			start := time.Now()
			name := args[0]
			in := cmd.InOrStdin()
			if name == "-" {
				name = "stdin"
			} else {
				f, err := os.Open(name)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			b, err := readDocument(in)
			if err != nil {
				return fmt.Errorf("load %s: %w", name, err)
			}
			// On a terminal, stderr shows the progress (progress.go).
			pw := newProgressWriter(cmd.ErrOrStderr(), stderrIsTerminal)
			pw.begin()
			err = g.withEtcd(cmd.Context(), func(ctx context.Context, s *session) error {
				_, err := s.w.PutAll(ctx, b.items, registry.WithProgress(pw.update))
				return err
			})
			pw.done()
			if err != nil {
				return fmt.Errorf("load %s: %w", name, err)
			}
			c := b.counts
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "wrote %d orgs, %d apps, %d machines, %d peers, %d gateways, %d regions in %s\n",
				c.orgs, c.apps, c.machines, c.peers, c.gateways, c.regions, time.Since(start).Round(time.Millisecond))
			return err
		},
	}
}

// document is the bulk-load format: one array per kind, each element a
// registry value (SPEC §3) with its name fields. Elements are kept raw here
// and decoded one by one, so that an error can say which element it is in.
type document struct {
	Orgs     []json.RawMessage `json:"orgs"`
	Apps     []json.RawMessage `json:"apps"`
	Machines []json.RawMessage `json:"machines"`
	Peers    []json.RawMessage `json:"peers"`
	Gateways []json.RawMessage `json:"gateways"`
	Regions  []json.RawMessage `json:"regions"`
}

// batch is a checked document, ready for Writer.PutAll.
type batch struct {
	items  []registry.Item
	seen   map[registry.Key]position
	counts struct{ orgs, apps, machines, peers, gateways, regions int }
}

// position is where an element sits in the document, e.g. machines[17].
type position struct {
	section string
	index   int
}

func (p position) String() string { return fmt.Sprintf("%s[%d]", p.section, p.index) }

// readDocument decodes and checks a whole document. Unknown fields are
// errors at every level: a misspelt field in a bulk file must not silently
// drop data from thousands of entries.
func readDocument(r io.Reader) (*batch, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var doc *document
	if err := dec.Decode(&doc); err != nil {
		// encoding/json has no error type for an unknown field, only
		// this message.
		if strings.Contains(err.Error(), "unknown field") {
			return nil, fmt.Errorf("%w; a document has only orgs, apps, machines, peers, gateways and regions", jsonError(err))
		}
		return nil, jsonError(err)
	}
	if doc == nil {
		return nil, errors.New("document is null; want an object with arrays orgs, apps, machines, peers, gateways, regions")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the document at byte %d; want exactly one JSON object", dec.InputOffset())
	}
	n := len(doc.Orgs) + len(doc.Apps) + len(doc.Machines) + len(doc.Peers) + len(doc.Gateways) + len(doc.Regions)
	b := &batch{items: make([]registry.Item, 0, n), seen: make(map[registry.Key]position, n)}
	var err error
	if b.counts.orgs, err = addSection[orgEntry](b, "orgs", doc.Orgs); err != nil {
		return nil, err
	}
	if b.counts.apps, err = addSection[appEntry](b, "apps", doc.Apps); err != nil {
		return nil, err
	}
	if b.counts.machines, err = addSection[machineEntry](b, "machines", doc.Machines); err != nil {
		return nil, err
	}
	if b.counts.peers, err = addSection[peerEntry](b, "peers", doc.Peers); err != nil {
		return nil, err
	}
	if b.counts.gateways, err = addSection[gatewayEntry](b, "gateways", doc.Gateways); err != nil {
		return nil, err
	}
	if b.counts.regions, err = addSection[regionEntry](b, "regions", doc.Regions); err != nil {
		return nil, err
	}
	return b, nil
}

// entry is an element type of a document.
type entry interface {
	// item copies the entry's names into its registry value and returns
	// the value, ready for PutAll.
	item() registry.Item
}

// addSection decodes and checks the elements of one array, adds them to b
// and returns how many there were. The values are validated here although
// PutAll validates them again: here the error can name the element's
// position in the file. PutAll still does the checks that need other keys
// (an address inside its org's network, a network held by one org only).
func addSection[E any, P interface {
	*E
	entry
}](b *batch, section string, raws []json.RawMessage) (int, error) {
	for i, raw := range raws {
		pos := position{section, i}
		// Decoding null into a struct succeeds and leaves it empty, which
		// would be reported as a confusing empty-name error.
		if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			return 0, fmt.Errorf("%s: null; want an object", pos)
		}
		e := P(new(E))
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(e); err != nil {
			return 0, fmt.Errorf("%s: %w", pos, jsonError(err))
		}
		v := e.item()
		k := v.Key()
		if err := v.Validate(); err != nil {
			return 0, fmt.Errorf("%s: %w", pos, err)
		}
		// Writing a key twice in one transaction fails, in two concurrent
		// ones it races; either way the file is ambiguous.
		if prev, dup := b.seen[k]; dup {
			return 0, fmt.Errorf("%s: %s is already given in %s", pos, k, prev)
		}
		b.seen[k] = pos
		b.items = append(b.items, v)
	}
	return len(raws), nil
}

// jsonError rewrites a decoding error for someone who wrote JSON, not Go:
// syntax errors get their byte offset, type errors the JSON field name and
// JSON types, and the "json: " prefix goes.
func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at byte %d: %w", se.Offset, err)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return fmt.Errorf("invalid JSON: the document ends too early (%w)", err)
	case errors.As(err, &te) && te.Field == "":
		return fmt.Errorf("got a JSON %s, want %s", te.Value, jsonKind(te.Type))
	case errors.As(err, &te):
		// Field is a Go path through the entry's embedded value, such
		// as "Region.lat"; the documents are flat, so its last part is
		// the JSON field name.
		field := te.Field[strings.LastIndexByte(te.Field, '.')+1:]
		return fmt.Errorf("field %q: got a JSON %s, want %s", field, te.Value, jsonKind(te.Type))
	}
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
}

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// jsonKind names the JSON that decodes into t.
func jsonKind(t reflect.Type) string {
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return "a string" // addresses, prefixes, times
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return t.String()
}

// The item methods ignore updated_at from the document (list -o json
// prints it, so a listing can be loaded again): PutAll stamps the time of
// the load, which is what servers measure write-to-DNS latency from.

func (e *orgEntry) item() registry.Item {
	o := &e.OrgValue
	o.Name, o.UpdatedAt = e.Name, time.Time{}
	return o
}

func (e *appEntry) item() registry.Item {
	a := &e.AppValue
	a.Org, a.Name, a.UpdatedAt = e.Org, e.Name, time.Time{}
	return a
}

func (e *machineEntry) item() registry.Item {
	m := &e.Machine
	m.Org, m.App, m.ID, m.UpdatedAt = e.Org, e.App, e.ID, time.Time{}
	if m.ProcessGroup == "" {
		m.ProcessGroup = registry.DefaultProcessGroup
	}
	return m
}

func (e *peerEntry) item() registry.Item {
	p := &e.Peer
	p.Org, p.Name, p.UpdatedAt = e.Org, e.Name, time.Time{}
	return p
}

func (e *gatewayEntry) item() registry.Item {
	gw := &e.Gateway
	gw.Region, gw.UpdatedAt = e.Region, time.Time{}
	return gw
}

func (e *regionEntry) item() registry.Item {
	r := &e.Region
	r.Code, r.UpdatedAt = e.Code, time.Time{}
	return r
}
