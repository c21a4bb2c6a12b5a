package zones

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/registry"
	"github.com/miekg/dns"
)

// The golden files under testdata/ hold a registry, askers and questions
// with their expected answers; testdata/README.md describes the format.
// go test -run TestGolden -update rewrites the expectations from what
// Answer returns, for a reviewer to diff.

var update = flag.Bool("update", false, "rewrite the expectations of testdata/*.golden from actual answers")

// goldenLoad is the registry clock at the load; the n-th update section
// runs 100·n seconds later. SOA serials in golden files are therefore fixed.
var goldenLoad = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC) // serial 1735689600

func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.golden")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".golden"), func(t *testing.T) { runGolden(t, f) })
	}
}

func runGolden(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")

	g := golden{t: t, path: path}
	var out []string
	section, body := "", ""
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		out = append(out, l)
		if s, ok := sectionName(l); ok {
			g.flush(section, body)
			section, body = s, ""
			if s != "registry" && s != "update" && s != "queries" {
				t.Fatalf("%s:%d: unknown section %q", path, i+1, s)
			}
			if s != "registry" && g.store == nil {
				t.Fatalf("%s:%d: the registry section must come first", path, i+1)
			}
			continue
		}
		if section != "queries" {
			body += l + "\n"
			continue
		}
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		// A query's expectations are the indented lines after it.
		var want []string
		for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "  ") {
			i++
			want = append(want, strings.TrimSpace(lines[i]))
		}
		got := g.line(fmt.Sprintf("%s:%d", path, i+1-len(want)), l, want)
		if *update {
			for _, x := range got {
				out = append(out, "  "+x)
			}
		} else {
			for _, x := range want {
				out = append(out, "  "+x)
			}
		}
	}
	g.flush(section, body)
	if *update {
		if err := os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	} else if g.failed {
		t.Log("run `go test ./zones -run TestGolden -update` to rewrite, then review the diff")
	}
}

// golden is the state of one golden file as its lines are read in order.
type golden struct {
	t       *testing.T
	path    string
	store   *registry.Store
	snap    *registry.Snapshot
	clock   time.Time
	updates int
	asker   *Asker
	cfg     Config
	failed  bool
}

// flush loads the registry or applies an update once its section ends.
func (g *golden) flush(section, body string) {
	t := g.t
	switch section {
	case "registry":
		g.clock = goldenLoad
		snap, store, err := registry.SnapshotFromText(body, registry.WithClock(func() time.Time { return g.clock }))
		if err != nil {
			t.Fatalf("%s: registry: %v", g.path, err)
		}
		g.snap, g.store = snap, store
	case "update":
		evs, err := registry.ParseText(registry.DefaultPrefix, body)
		if err != nil {
			t.Fatalf("%s: update: %v", g.path, err)
		}
		g.updates++
		g.clock = goldenLoad.Add(time.Duration(g.updates) * 100 * time.Second)
		rev := g.snap.Revision
		for i := range evs {
			evs[i].CreateRevision += rev
			evs[i].ModRevision += rev
			evs[i].Delete = string(evs[i].Value) == "DELETE"
		}
		g.store.Apply(rev+int64(len(evs)), evs)
		g.snap = g.store.Snapshot()
	default:
		return
	}
	if inv := g.store.Invalid(); len(inv) > 0 {
		t.Logf("%s: values the registry skips (meant?): %v", g.path, inv)
	}
}

// line handles one line of a queries section and returns the actual
// expectation lines of a query (nil for other lines).
func (g *golden) line(where, l string, want []string) []string {
	t := g.t
	word, args, _ := strings.Cut(l, " ")
	var err error
	switch word {
	case "config":
		if g.cfg, err = parseGoldenConfig(args); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
	case "asker":
		a, err := parseGoldenAsker(g.snap, args)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		g.asker = &a
	case "query":
		if g.asker == nil {
			t.Fatalf("%s: query before any asker line", where)
		}
		q, err := parseGoldenQuestion(args)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		res := Answer(g.snap, *g.asker, q, g.cfg)
		got := formatResult(res)
		checkInvariants(t, where, q, res)
		if *update {
			return got
		}
		want, err = canonical(want)
		if err != nil {
			t.Errorf("%s: expectation: %v", where, err)
			return got
		}
		if strings.Join(want, "\n") != strings.Join(got, "\n") {
			g.failed = true
			t.Errorf("%s: query %s\n--- want\n  %s\n--- got\n  %s", where, args,
				strings.Join(want, "\n  "), strings.Join(got, "\n  "))
		}
		return got
	default:
		t.Fatalf("%s: unknown line %q (want config, asker or query)", where, l)
	}
	if len(want) > 0 {
		t.Fatalf("%s: indented lines belong after a query line", where)
	}
	return nil
}

// sectionName reads a "-- name --" line.
func sectionName(l string) (string, bool) {
	if !strings.HasPrefix(l, "-- ") || !strings.HasSuffix(l, " --") || len(l) < 7 {
		return "", false
	}
	return strings.TrimSpace(l[3 : len(l)-3]), true
}

func parseGoldenConfig(args string) (Config, error) {
	var c Config
	for _, f := range strings.Fields(args) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "ttl", "negttl":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return c, fmt.Errorf("config %s: %v", k, err)
			}
			if k == "ttl" {
				c.TTL = uint32(n)
			} else {
				c.NegTTL = uint32(n)
			}
		case "region":
			c.ServerRegion = v
		case "health":
			if v != "on" && v != "off" {
				return c, fmt.Errorf("config health=%q: want on or off", v)
			}
			c.IgnoreHealth = v == "off"
		case "size":
			n, err := strconv.Atoi(v)
			if err != nil {
				return c, fmt.Errorf("config size: %v", err)
			}
			c.ReplySize = n
		default:
			return c, fmt.Errorf("config: unknown setting %q (want ttl=, negttl=, region=, health=, size=)", k)
		}
	}
	return c, nil
}

// parseGoldenAsker reads "<addr> [org=<slug>]": the org is the one whose
// network holds addr unless given; the owner is looked up in that org.
func parseGoldenAsker(snap *registry.Snapshot, args string) (Asker, error) {
	f := strings.Fields(args)
	if len(f) == 0 || len(f) > 2 {
		return Asker{}, fmt.Errorf("asker: want \"<addr> [org=<slug>]\", got %q", args)
	}
	addr, err := netip.ParseAddr(f[0])
	if err != nil {
		return Asker{}, fmt.Errorf("asker: %v", err)
	}
	a := Asker{Addr: addr, Org: snap.OrgOf(addr)}
	if len(f) == 2 {
		name, ok := strings.CutPrefix(f[1], "org=")
		if !ok {
			return Asker{}, fmt.Errorf("asker: want org=<slug>, got %q", f[1])
		}
		if a.Org = snap.Org(name); a.Org == nil {
			return Asker{}, fmt.Errorf("asker: no org %q in the registry", name)
		}
	}
	if a.Org != nil {
		a.Owner, _ = a.Org.Owner(addr)
	}
	return a, nil
}

// parseGoldenQuestion reads "<name> <type>", class IN.
func parseGoldenQuestion(args string) (dns.Question, error) {
	f := strings.Fields(args)
	if len(f) != 2 {
		return dns.Question{}, fmt.Errorf("query: want \"<name> <type>\", got %q", args)
	}
	qt, ok := dns.StringToType[strings.ToUpper(f[1])]
	if !ok {
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(f[1]), "TYPE"), 10, 16)
		if err != nil {
			return dns.Question{}, fmt.Errorf("query: unknown type %q", f[1])
		}
		qt = uint16(n)
	}
	return dns.Question{Name: f[0], Qtype: qt, Qclass: dns.ClassINET}, nil
}

// formatResult writes a Result as expectation lines.
func formatResult(res Result) []string {
	if !res.InZone {
		return []string{"outside"}
	}
	out := []string{"rcode " + dns.RcodeToString[res.Rcode]}
	for _, rr := range res.Answer {
		out = append(out, "answer "+rrText(rr))
	}
	for _, rr := range res.Ns {
		out = append(out, "authority "+rrText(rr))
	}
	for _, rr := range res.Extra {
		out = append(out, "additional "+rrText(rr))
	}
	if res.FailOpen {
		out = append(out, "failopen")
	}
	return out
}

// rrText is a record in zone-file form on one line, fields separated by
// one space (miekg/dns separates them by tabs).
func rrText(rr dns.RR) string { return strings.ReplaceAll(rr.String(), "\t", " ") }

// canonical parses expectation lines and writes them back the way
// formatResult does, so that spacing in the golden file does not matter
// but every field, TTL and TXT character-string does.
func canonical(lines []string) ([]string, error) {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		word, rest, _ := strings.Cut(l, " ")
		switch word {
		case "outside", "failopen":
			out = append(out, word)
		case "rcode":
			out = append(out, "rcode "+strings.TrimSpace(rest))
		case "answer", "authority", "additional":
			rr, err := dns.NewRR(rest)
			if err != nil || rr == nil {
				return nil, fmt.Errorf("record %q: %v", rest, err)
			}
			out = append(out, word+" "+rrText(rr))
		default:
			return nil, fmt.Errorf("unknown expectation %q (want rcode, answer, authority, additional, failopen or outside)", l)
		}
	}
	return out, nil
}

// checkInvariants holds for every answer: owners echo the question, TXT
// strings fit, negative answers carry exactly the zone's SOA.
func checkInvariants(t *testing.T, where string, q dns.Question, res Result) {
	t.Helper()
	for _, rr := range res.Answer {
		if rr.Header().Name != q.Name {
			t.Errorf("%s: answer owner %q, question %q", where, rr.Header().Name, q.Name)
		}
		if txt, ok := rr.(*dns.TXT); ok {
			for _, s := range txt.Txt {
				if len(s) > 255 {
					t.Errorf("%s: TXT string of %d bytes", where, len(s))
				}
			}
		}
	}
	if res.InZone && res.Rcode != dns.RcodeRefused && len(res.Answer) == 0 {
		if len(res.Ns) != 1 || res.Ns[0].Header().Rrtype != dns.TypeSOA {
			t.Errorf("%s: negative answer without the SOA: %v", where, res.Ns)
		}
	}
}
