package integration

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/integration/digtest"
	"github.com/meshdns/meshdns/integration/harness"
)

// ttl is meshdns's default TTL (--ttl 5s), also its negative TTL. Captured
// answers of the system meshdns replaces carry 5, and clients rely on it.
const ttl = 5

// The registry of a test, written with `meshctl load` (the document format
// of cmd/meshctl/README.md) and used to compute expected answers.
type (
	org struct {
		Name    string `json:"name"`
		Network string `json:"network"`
	}
	app struct {
		Org     string `json:"org"`
		Name    string `json:"name"`
		Flycast string `json:"flycast,omitempty"`
	}
	machine struct {
		Org              string            `json:"org"`
		App              string            `json:"app"`
		ID               string            `json:"id"`
		Region           string            `json:"region"`
		IP               string            `json:"ip"`
		State            string            `json:"state"`
		ProcessGroup     string            `json:"process_group,omitempty"`
		Metadata         map[string]string `json:"metadata,omitempty"`
		SkipRegistration bool              `json:"skip_registration,omitempty"`
		Checks           map[string]string `json:"checks,omitempty"`
		Services         []service         `json:"services,omitempty"`
	}
	service struct {
		Name     string `json:"name"`
		Protocol string `json:"protocol"`
		Port     int    `json:"port"`
	}
	peer struct {
		Org    string `json:"org"`
		Name   string `json:"name"`
		IP     string `json:"ip"`
		Region string `json:"region,omitempty"`
	}
	registryDoc struct {
		Orgs     []org     `json:"orgs"`
		Apps     []app     `json:"apps"`
		Machines []machine `json:"machines"`
		Peers    []peer    `json:"peers"`
	}
)

func (m machine) started() bool  { return m.State == "started" && !m.SkipRegistration }
func (m machine) deployed() bool { return m.State != "destroyed" && !m.SkipRegistration }

// load writes doc into the registry of m with `meshctl load -`.
func load(t *testing.T, m *harness.Meshdns, doc registryDoc) {
	t.Helper()
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, errOut, code := harness.MeshctlStdin(t, m.EtcdEndpoint(), strings.NewReader(string(data)), "load", "-")
	if code != 0 {
		t.Fatalf("meshctl load -: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	t.Logf("meshctl load (%d machines) in %v: %s", len(doc.Machines), time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
}

// Expected TXT texts, computed from a registryDoc exactly as SPEC §2 words
// them (independently of the server's code).

func (d registryDoc) machinesOf(orgName, appName string, all bool) []machine {
	var ms []machine
	for _, m := range d.Machines {
		if m.Org == orgName && (appName == "" || m.App == appName) && (m.started() || all && m.deployed()) {
			ms = append(ms, m)
		}
	}
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].App != ms[j].App {
			return ms[i].App < ms[j].App
		}
		return ms[i].ID < ms[j].ID
	})
	return ms
}

func (d registryDoc) vmsText(orgName, appName string, all bool) string {
	var parts []string
	for _, m := range d.machinesOf(orgName, appName, all) {
		parts = append(parts, m.ID+" "+m.Region)
	}
	return strings.Join(parts, ",")
}

func (d registryDoc) regionsText(orgName, appName string, all bool) string {
	var rs []string
	for _, m := range d.machinesOf(orgName, appName, all) {
		if !slices.Contains(rs, m.Region) {
			rs = append(rs, m.Region)
		}
	}
	slices.Sort(rs)
	return strings.Join(rs, ",")
}

func (d registryDoc) instancesText(orgName string, all bool) string {
	var parts []string
	for _, m := range d.machinesOf(orgName, "", all) {
		parts = append(parts, fmt.Sprintf("instance=%s,app=%s,ip=%s,region=%s", m.ID, m.App, m.IP, m.Region))
	}
	return strings.Join(parts, ";")
}

func (d registryDoc) appsText(orgName string) string {
	var names []string
	for _, a := range d.Apps {
		if a.Org == orgName && !slices.Contains(names, a.Name) {
			names = append(names, a.Name)
		}
	}
	for _, m := range d.Machines {
		if m.Org == orgName && m.deployed() && !slices.Contains(names, m.App) {
			names = append(names, m.App)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

func (d registryDoc) peersText(orgName string) string {
	var names []string
	for _, p := range d.Peers {
		if p.Org == orgName && !strings.HasPrefix(p.Name, "interactive-") {
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

// want is the expected response to one question.
type want struct {
	rcode string // "NOERROR", "NXDOMAIN", ...
	// aaaa lists the expected addresses nearest first, in groups of equal
	// distance from the asker: within a group any order is right (equal
	// distances are ordered by a per-asker hash).
	aaaa [][]string
	// txt, when hasTXT, is the expected text of the one TXT record, its
	// strings concatenated.
	txt    string
	hasTXT bool
	// check, if set, checks the answer section instead (SOA, NS).
	check func(t *testing.T, res *digtest.Result)
}

func noerror(groups ...[]string) want { return want{rcode: "NOERROR", aaaa: groups} }
func txt(s string) want               { return want{rcode: "NOERROR", txt: s, hasTXT: true} }

var (
	nodata   = want{rcode: "NOERROR"}
	nxdomain = want{rcode: "NXDOMAIN"}
)

// one is a group of one address.
func one(ip string) []string { return []string{ip} }

// checkResponse checks a dig result against w, and what every .internal
// answer must have: AA, TTL 5 on every record, answers owned by the
// question's name exactly as asked, the zone's SOA (TTL and MINIMUM 5) in
// the authority section of every answer without records.
func checkResponse(t *testing.T, res *digtest.Result, qname string, w want) {
	t.Helper()
	if res.Status != w.rcode {
		t.Errorf("status %s, want %s\n%s", res.Status, w.rcode, res.Raw)
		return
	}
	if !res.HasFlag("aa") {
		t.Errorf("no aa flag in %v\n%s", res.Flags, res.Raw)
	}
	if res.HasFlag("tc") {
		t.Errorf("tc flag set\n%s", res.Raw)
	}
	if len(res.Question) != 1 || res.Question[0].Name != dns.Fqdn(qname) {
		t.Errorf("question %v, want %s echoed byte for byte", res.Question, dns.Fqdn(qname))
	}
	for _, rr := range res.Answer {
		if rr.Header().Name != dns.Fqdn(qname) {
			t.Errorf("answer owner %q, want the question's %q", rr.Header().Name, dns.Fqdn(qname))
		}
		if rr.Header().Ttl != ttl {
			t.Errorf("answer TTL %d, want %d: %v", rr.Header().Ttl, ttl, rr)
		}
	}
	switch {
	case w.check != nil:
		w.check(t, res)
	case w.hasTXT:
		checkTXT(t, res, w.txt)
	case len(w.aaaa) > 0:
		checkAAAA(t, res, w.aaaa)
	default:
		if len(res.Answer) != 0 {
			t.Errorf("%d answers, want none\n%s", len(res.Answer), res.Raw)
		}
		checkNegativeSOA(t, res, qname)
	}
}

// checkNegativeSOA checks the authority section of an answer without
// records: exactly the zone's SOA, with TTL and MINIMUM equal to the
// negative TTL.
func checkNegativeSOA(t *testing.T, res *digtest.Result, qname string) {
	t.Helper()
	zone := "internal."
	if strings.HasSuffix(strings.ToLower(dns.Fqdn(qname)), "flycast.") {
		zone = "flycast."
	}
	if strings.HasSuffix(strings.ToLower(dns.Fqdn(qname)), ".ip6.arpa.") {
		zone = "a.a.d.f.ip6.arpa."
	}
	if len(res.Authority) != 1 {
		t.Errorf("authority section has %d records, want the zone's SOA\n%s", len(res.Authority), res.Raw)
		return
	}
	soa, ok := res.Authority[0].(*dns.SOA)
	if !ok {
		t.Errorf("authority holds %v, want an SOA", res.Authority[0])
		return
	}
	if !strings.EqualFold(soa.Hdr.Name, zone) {
		t.Errorf("SOA owner %q, want %s", soa.Hdr.Name, zone)
	}
	if soa.Hdr.Ttl != ttl || soa.Minttl != ttl {
		t.Errorf("SOA TTL %d MINIMUM %d, want both %d (negative TTL)", soa.Hdr.Ttl, soa.Minttl, ttl)
	}
}

// checkTXT checks the answer is one TXT record whose strings, each at most
// 255 bytes, concatenate to text.
func checkTXT(t *testing.T, res *digtest.Result, text string) {
	t.Helper()
	if len(res.Answer) != 1 {
		t.Errorf("%d answers, want exactly one TXT record\n%s", len(res.Answer), res.Raw)
		return
	}
	rec, ok := res.Answer[0].(*dns.TXT)
	if !ok {
		t.Errorf("answer %v is not TXT", res.Answer[0])
		return
	}
	for i, s := range rec.Txt {
		if len(s) > 255 {
			t.Errorf("TXT string %d is %d bytes, more than 255", i, len(s))
		}
	}
	if got := strings.Join(rec.Txt, ""); got != text {
		t.Errorf("TXT text (strings concatenated):\n got %q\nwant %q", got, text)
	}
	if len(text) > 255 && len(rec.Txt) < 2 {
		t.Errorf("a %d-byte text came in %d string(s)", len(text), len(rec.Txt))
	}
}

// checkAAAA checks the answer holds exactly the addresses of groups, in
// group order; any order within a group.
func checkAAAA(t *testing.T, res *digtest.Result, groups [][]string) {
	t.Helper()
	got := aaaaOf(res.Answer)
	var flat []string
	for _, g := range groups {
		flat = append(flat, g...)
	}
	if len(got) != len(flat) {
		t.Errorf("answers %v, want %v (groups of equal distance: %v)", got, flat, groups)
		return
	}
	i := 0
	for _, g := range groups {
		part := slices.Clone(got[i : i+len(g)])
		exp := slices.Clone(g)
		slices.Sort(part)
		slices.Sort(exp)
		if !slices.Equal(part, exp) {
			t.Errorf("answers %v, want nearest first in groups %v: positions %d-%d hold %v", got, groups, i, i+len(g)-1, got[i:i+len(g)])
			return
		}
		i += len(g)
	}
}

// aaaaOf returns the addresses of AAAA records, in order; other records
// appear as their text.
func aaaaOf(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if a, ok := rr.(*dns.AAAA); ok {
			out = append(out, a.AAAA.String())
		} else {
			out = append(out, rr.String())
		}
	}
	return out
}

// seen says when digUntil saw its condition hold, measured from its call:
// the change became visible between the start of the dig before (After;
// 0 when the first dig saw it) and the end of the dig that saw it (By).
type seen struct {
	After, By time.Duration
	Digs      int
}

func (s seen) String() string {
	if s.Digs == 1 {
		return fmt.Sprintf("the very next dig saw it (answer %v after meshctl returned)", s.By.Round(time.Microsecond))
	}
	return fmt.Sprintf("visible between %v and %v after meshctl returned (dig #%d)", s.After.Round(time.Microsecond), s.By.Round(time.Microsecond), s.Digs)
}

// digUntil runs dig (see Meshdns.Dig) until cond holds or timeout passes.
func digUntil(t *testing.T, m *harness.Meshdns, timeout time.Duration, what string, cond func(*digtest.Result) bool, args ...string) seen {
	t.Helper()
	start := time.Now()
	var prevStart time.Duration
	for tries := 1; ; tries++ {
		digStart := time.Since(start)
		last := m.Dig(t, args...)
		if cond(last) {
			after := prevStart
			if tries == 1 {
				after = 0
			}
			return seen{After: after, By: time.Since(start), Digs: tries}
		}
		prevStart = digStart
		if time.Since(start) > timeout {
			t.Fatalf("%s: not seen within %v (%d digs); last answer:\n%s", what, timeout, tries, last.Raw)
		}
	}
}
