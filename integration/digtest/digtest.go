// Package digtest runs the real dig(1) from BIND (Debian package
// bind9-dnsutils) and parses what it prints, so end-to-end tests check the
// server the way an operator would, through an independent DNS client
// rather than through the same library the server is built on.
//
// Parse needs dig's default, full output: do not pass +short, +noall,
// +nocomments or other options that hide the header or the section titles.
// Options that change the query (+tcp, +norec, +noedns, +edns=N, +bufsize=N,
// +dnssec, +multiline, +qr, ...) are fine.
package digtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshdns/meshdns/internal/etcdtest"
)

// runTimeout bounds one dig run, retries included. It is shorter than dig's
// own worst case (+time=5 +tries=3) on purpose: a test server on loopback
// that needs longer than this is broken, and failing fast says so.
const runTimeout = 10 * time.Second

// Result is one DNS response as dig printed it.
type Result struct {
	Opcode string // "QUERY"
	Status string // the RCODE: "NOERROR", "NXDOMAIN", "BADVERS", ...
	ID     uint16
	Flags  []string // header flags in dig's order, e.g. qr aa rd ra tc

	Question                      []dns.Question
	Answer, Authority, Additional []dns.RR // Additional excludes the OPT record; see EDNS

	// EDNS describes the response's OPT record; nil if it had none.
	EDNS *EDNS

	// RetriedTCP reports that dig got a truncated UDP response and asked
	// again over TCP; everything else in Result describes the TCP response.
	RetriedTCP bool
	// Server is the address that answered, as dig prints it
	// ("127.0.0.1#5353"), and Protocol the transport ("UDP" or "TCP").
	Server, Protocol string
	// MsgSize is the size of the response in bytes.
	MsgSize int
	// Notes are dig's remarks outside the message itself, without the
	// leading ";; ", e.g. "WARNING: recursion requested but not available"
	// or "BADVERS, retrying with EDNS version 0.".
	Notes []string

	// Raw is dig's complete output.
	Raw string
}

// EDNS is the OPT pseudo-section of a response.
type EDNS struct {
	Version uint8
	Flags   []string // e.g. "do"
	UDPSize uint16
	// Options are the option lines below the EDNS line, without the leading
	// "; ", e.g. "COOKIE: 0123... (good)", "NSID: ...", "EDE: 15 (Blocked)".
	Options []string
}

// HasFlag reports whether the response header has flag f ("aa", "tc", ...).
func (r *Result) HasFlag(f string) bool { return slices.Contains(r.Flags, f) }

// Run runs dig with args (no need to add "dig" itself) and parses its output.
// The test fails if dig is missing under CI=true (it is skipped otherwise),
// exits non-zero (for example when no server answered), takes longer than
// 10 s, or prints something Parse cannot read; dig's output is included in
// the failure.
func Run(t testing.TB, args ...string) *Result {
	t.Helper()
	dig := etcdtest.RequireTool(t, "dig")
	var stderr string
	out, err := Again(t, func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, dig, args...)
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		err := cmd.Run()
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %v", runTimeout)
		}
		stderr = se.String()
		return so.String(), err
	})
	if err != nil {
		t.Fatalf("dig %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr)
	}
	res, err := Parse(out)
	if err != nil {
		t.Fatalf("dig %s: %v\noutput:\n%s", strings.Join(args, " "), err, out)
	}
	return res
}

// ownQueryWarning is what dig prints when the message it read back has QR
// clear: a query, not a response.
const ownQueryWarning = ";; Warning: query response not set"

// ReadOwnQuery reports whether dig's output shows that it read its own
// query back instead of a reply. dig (BIND 9.18) sets SO_REUSEPORT on its
// client socket and binds a random source port on 0.0.0.0 (or [::]). Run
// as the server's user, it can draw the port a test server listens on; its
// socket, connected to that address and port, then matches its own
// datagram better than the server's sockets do. The signs: QR clear, and
// the COOKIE dig sent coming back alone ("(echoed)"), or no COOKIE when
// dig sent none. meshdns adds its server cookie to every reply, so a
// QR-clear message from it does not match.
func ReadOwnQuery(out string) bool {
	return strings.Contains(out, ownQueryWarning) && (strings.Contains(out, " (echoed)") || !strings.Contains(out, "COOKIE:"))
}

// ownQueryRuns is how many times Again runs dig. A port collision is about
// a one-in-28,000 draw, so three in a row mean something else is wrong.
const ownQueryRuns = 3

// Again calls run, one dig invocation returning its output, and calls it
// again (up to ownQueryRuns times in all) while the output shows that dig
// read its own query back (ReadOwnQuery); the test fails if every run did.
// It returns the last output and error. Every dig a test runs against a
// server on a port from the kernel's ephemeral range (where dig draws its
// source ports) goes through Run or Again; the netns tests' servers are on
// port 53, outside it.
func Again(t testing.TB, run func() (string, error)) (string, error) {
	t.Helper()
	for range ownQueryRuns - 1 {
		out, err := run()
		if !ReadOwnQuery(out) {
			return out, err
		}
		t.Logf("digtest: dig read its own query back (its random source port was the server's port); running it again:\n%s", out)
	}
	out, err := run()
	if ReadOwnQuery(out) {
		t.Fatalf("dig read its own query back %d times in a row:\n%s", ownQueryRuns, out)
	}
	return out, err
}

var (
	headerRE = regexp.MustCompile(`^;; ->>HEADER<<- opcode: (\S+), status: (\S+), id: (\d+)$`)
	flagsRE  = regexp.MustCompile(`^;; flags:([^;]*);`)
	ednsRE   = regexp.MustCompile(`^; EDNS: version: (\d+), flags:([^;]*);.*\budp: (\d+)`)
	serverRE = regexp.MustCompile(`^;; SERVER: (\S+?)\(.*?\)(?: \((\w+)\))?$`)
	sizeRE   = regexp.MustCompile(`^;; MSG SIZE +rcvd: (\d+)$`)
	countsRE = regexp.MustCompile(`\b(ANSWER|AUTHORITY|ADDITIONAL): (\d+)`)
)

// Section titles as dig prints them, without the leading ";; " and the
// trailing colon.
const (
	optSection        = "OPT PSEUDOSECTION"
	questionSection   = "QUESTION SECTION"
	answerSection     = "ANSWER SECTION"
	authoritySection  = "AUTHORITY SECTION"
	additionalSection = "ADDITIONAL SECTION"
)

// Lines of dig's output that carry nothing a test needs.
var ignoredPrefixes = []string{
	";; global options:",
	";; Query time:",
	";; WHEN:",
}

// Parse reads dig's default output for one query. Only the response is
// parsed: with +qr, the query that dig prints first is skipped. Record lines
// (including +multiline ones) are parsed with dns.NewRR. Parse checks that
// the number of records in each printed section matches the header counts,
// so a record it could not read is an error rather than silently missing.
func Parse(out string) (*Result, error) {
	res := &Result{Raw: out}
	lines := strings.Split(out, "\n")

	// dig prints the query (+qr), retry notices and the banner before
	// ";; Got answer:", and the response after it.
	start := -1
	for i, l := range lines {
		if l != ";; Got answer:" {
			continue
		}
		if start >= 0 {
			return nil, errors.New("dig output holds more than one response; Parse reads one")
		}
		start = i + 1
	}
	if start < 0 {
		return nil, errors.New(`no ";; Got answer:" in dig output (do not use +short, +noall or +nocomments)`)
	}
	// Of the lines before the response keep the retry notices, skipping
	// the query that +qr prints between ";; Sending:" and ";; QUERY SIZE:".
	inQuery := false
	for _, l := range lines[:start-1] {
		switch {
		case l == ";; Sending:":
			inQuery = true
		case strings.HasPrefix(l, ";; QUERY SIZE:"):
			inQuery = false
		case inQuery || ignored(l) || !strings.HasPrefix(l, ";; "):
		default:
			if l == ";; Truncated, retrying in TCP mode." {
				res.RetriedTCP = true
			}
			res.Notes = append(res.Notes, strings.TrimPrefix(l, ";; "))
		}
	}

	var (
		section string             // current section title, e.g. "ANSWER SECTION"; "" between sections
		pending []string           // lines of a record whose parentheses are still open
		counts  = map[string]int{} // header counts: "ANSWER" -> 2
		seen    = map[string]bool{}
	)
	for _, l := range lines[start:] {
		if len(pending) > 0 {
			pending = append(pending, l)
			if parenDepth(strings.Join(pending, "\n")) > 0 {
				continue
			}
			if err := res.addRR(section, strings.Join(pending, "\n")); err != nil {
				return nil, err
			}
			pending = nil
			continue
		}
		switch {
		case l == "":
			section = ""
		case strings.HasPrefix(l, ";; ->>HEADER<<-"):
			m := headerRE.FindStringSubmatch(l)
			if m == nil {
				return nil, fmt.Errorf("unreadable header line %q", l)
			}
			id, _ := strconv.ParseUint(m[3], 10, 16)
			res.Opcode, res.Status, res.ID = m[1], m[2], uint16(id)
		case strings.HasPrefix(l, ";; flags:"):
			m := flagsRE.FindStringSubmatch(l)
			if m == nil {
				return nil, fmt.Errorf("unreadable flags line %q", l)
			}
			res.Flags = strings.Fields(m[1])
			for _, c := range countsRE.FindAllStringSubmatch(l, -1) {
				counts[c[1]], _ = strconv.Atoi(c[2])
			}
		case strings.HasPrefix(l, ";; ") && strings.HasSuffix(l, "SECTION:"):
			// Also matches "OPT PSEUDOSECTION:".
			section = strings.TrimSuffix(strings.TrimPrefix(l, ";; "), ":")
			seen[section] = true
		case strings.HasPrefix(l, ";; SERVER:"):
			m := serverRE.FindStringSubmatch(l)
			if m == nil {
				return nil, fmt.Errorf("unreadable server line %q", l)
			}
			res.Server, res.Protocol = m[1], m[2]
		case strings.HasPrefix(l, ";; MSG SIZE"):
			m := sizeRE.FindStringSubmatch(l)
			if m == nil {
				return nil, fmt.Errorf("unreadable size line %q", l)
			}
			res.MsgSize, _ = strconv.Atoi(m[1])
		case ignored(l):
		case strings.HasPrefix(l, ";; "):
			res.Notes = append(res.Notes, strings.TrimPrefix(l, ";; "))
		case section == optSection:
			if err := res.addOPTLine(l); err != nil {
				return nil, err
			}
		case section == questionSection:
			q, err := parseQuestion(l)
			if err != nil {
				return nil, err
			}
			res.Question = append(res.Question, q)
		case section == answerSection || section == authoritySection || section == additionalSection:
			if parenDepth(l) > 0 {
				pending = []string{l}
				continue
			}
			if err := res.addRR(section, l); err != nil {
				return nil, err
			}
		case strings.HasPrefix(l, ";"):
			// Comments outside sections, e.g. "; (1 server found)".
		default:
			return nil, fmt.Errorf("unexpected line %q outside any section", l)
		}
	}
	if len(pending) > 0 {
		return nil, fmt.Errorf("unterminated multi-line record %q", strings.Join(pending, "\n"))
	}
	if res.Status == "" {
		return nil, errors.New("no header line in dig output")
	}
	return res, res.checkCounts(counts, seen)
}

func ignored(line string) bool {
	for _, p := range ignoredPrefixes {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return false
}

func (r *Result) addRR(section, text string) error {
	rr, err := dns.NewRR(text)
	if err != nil {
		return fmt.Errorf("%s: %w", section, err)
	}
	if rr == nil {
		return fmt.Errorf("%s: no record in %q", section, text)
	}
	switch section {
	case answerSection:
		r.Answer = append(r.Answer, rr)
	case authoritySection:
		r.Authority = append(r.Authority, rr)
	case additionalSection:
		r.Additional = append(r.Additional, rr)
	}
	return nil
}

func (r *Result) addOPTLine(l string) error {
	if strings.HasPrefix(l, "; EDNS:") {
		m := ednsRE.FindStringSubmatch(l)
		if m == nil {
			return fmt.Errorf("unreadable EDNS line %q", l)
		}
		v, _ := strconv.ParseUint(m[1], 10, 8)
		size, _ := strconv.ParseUint(m[3], 10, 16)
		r.EDNS = &EDNS{Version: uint8(v), Flags: strings.Fields(m[2]), UDPSize: uint16(size)}
		return nil
	}
	if r.EDNS == nil {
		return fmt.Errorf("EDNS option line %q before the EDNS line", l)
	}
	r.EDNS.Options = append(r.EDNS.Options, strings.TrimPrefix(l, "; "))
	return nil
}

// parseQuestion reads a question line such as ";example.com.\t\tIN\tAAAA".
func parseQuestion(l string) (dns.Question, error) {
	f := strings.Fields(strings.TrimPrefix(l, ";"))
	if len(f) != 3 {
		return dns.Question{}, fmt.Errorf("unreadable question line %q", l)
	}
	class, ok := dns.StringToClass[f[1]]
	if !ok {
		return dns.Question{}, fmt.Errorf("unknown class in question line %q", l)
	}
	qtype, ok := dns.StringToType[f[2]]
	if !ok {
		// dig prints types it has no name for as TYPEnnn (RFC 3597).
		n, err := strconv.ParseUint(strings.TrimPrefix(f[2], "TYPE"), 10, 16)
		if err != nil {
			return dns.Question{}, fmt.Errorf("unknown type in question line %q", l)
		}
		qtype = uint16(n)
	}
	return dns.Question{Name: f[0], Qtype: qtype, Qclass: class}, nil
}

// checkCounts compares the records read with the header counts, for the
// sections that dig printed (options like +noanswer hide some).
func (r *Result) checkCounts(counts map[string]int, seen map[string]bool) error {
	additional := counts["ADDITIONAL"]
	if r.EDNS != nil {
		additional-- // the OPT record is counted but printed as a pseudo-section
	}
	for _, c := range []struct {
		section string
		want    int
		got     int
	}{
		{answerSection, counts["ANSWER"], len(r.Answer)},
		{authoritySection, counts["AUTHORITY"], len(r.Authority)},
		{additionalSection, additional, len(r.Additional)},
	} {
		if seen[c.section] && c.got != c.want {
			return fmt.Errorf("%s: read %d records, header says %d", c.section, c.got, c.want)
		}
	}
	return nil
}

// parenDepth returns how many parentheses in text are still open, ignoring
// those inside quoted strings and ";" comments, to find where a +multiline
// record ends.
func parenDepth(text string) int {
	depth := 0
	inQuote, inComment, escaped := false, false, false
	for _, c := range text {
		switch {
		case inComment:
			inComment = c != '\n'
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"':
			inQuote = !inQuote
		case inQuote:
		case c == ';':
			inComment = true
		case c == '(':
			depth++
		case c == ')':
			depth--
		}
	}
	return depth
}
