package zones

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// referenceForms lists, for every kind of name the grammar knows, a name
// of that kind and how docs/reference.md writes the name forms of that
// kind (each must appear there, in backticks). A kind added to the
// grammar without an entry here fails TestReferenceCoversEveryName.
var referenceForms = map[string]struct {
	k      kind
	sample string   // parses to k
	forms  []string // as docs/reference.md writes them
}{
	"nxdomain":     {nxdomain, "no.such.name.here.at.all.internal.", nil},
	"apex":         {apex, "internal.", []string{"`internal.`", "`flycast.`"}},
	"apiAddr":      {apiAddr, "_api.internal.", []string{"`_api.internal`"}},
	"appList":      {appList, "_apps.internal.", []string{"`_apps.internal`"}},
	"instances":    {instances, "all._instances.internal.", []string{"`_instances.internal`", "`all._instances.internal`"}},
	"peerList":     {peerList, "_peer.internal.", []string{"`_peer.internal`"}},
	"peerAddr":     {peerAddr, "laptop._peer.internal.", []string{"`<peer>._peer.internal`"}},
	"whoami":       {whoami, "_whoami.internal.", []string{"`_whoami.internal`"}},
	"appAddrs":     {appAddrs, "global.web.internal.", []string{"`<app>.internal`", "`global.<app>.internal`"}},
	"regionAddrs":  {regionAddrs, "ams.web.internal.", []string{"`<region>.<app>.internal`"}},
	"machineAddr":  {machineAddr, "3d8d9e0b2ee489.vm.web.internal.", []string{"`<id>.vm.<app>.internal`"}},
	"groupAddrs":   {groupAddrs, "worker.process.web.internal.", []string{"`<group>.process.<app>.internal`"}},
	"nearestAddrs": {nearestAddrs, "top3.nearest.of.web.internal.", []string{"`top<N>.nearest.of.<app>.internal`"}},
	"metaAddrs":    {metaAddrs, "primary.role.kv._metadata.web.internal.", []string{"`<value>.<key>.kv._metadata.<app>.internal`"}},
	"vmList":       {vmList, "all.vms.web.internal.", []string{"`vms.<app>.internal`", "`all.vms.<app>.internal`"}},
	"regionList":   {regionList, "all.regions.web.internal.", []string{"`regions.<app>.internal`", "`all.regions.<app>.internal`"}},
	"entApp":       {entApp, "nearest.of.web.internal.", []string{"`of.<app>`", "`nearest.of.<app>`"}},
	"entMachines":  {entMachines, "process.web.internal.", []string{"`vm.<app>`", "`process.<app>`"}},
	"entMeta":      {entMeta, "kv._metadata.web.internal.", []string{"`_metadata.<app>`", "`kv._metadata.<app>`"}},
	"entMetaKey":   {entMetaKey, "role.kv._metadata.web.internal.", []string{"`<key>.kv._metadata.<app>`"}},
	"flycastAddr":  {flycastAddr, "web.flycast.", []string{"`<app>.flycast`"}},
	"checkList":    {checkList, "checks.web.internal.", []string{"`checks.<app>.internal`"}},
	"srvName":      {srvName, "_http._tcp.web.internal.", []string{"`_<service>._<proto>.<app>.internal`"}},
	"entProto":     {entProto, "_udp.web.internal.", []string{"`_tcp.<app>.internal`", "`_udp.<app>.internal`"}},
	"reverseName":  {reverseName, "3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.1.0.0.a.a.d.f.ip6.arpa.", []string{"`a.a.d.f.ip6.arpa.`"}},
}

// grammarKinds reads the names of the constants of type kind from the
// package's source, wherever they are declared: the list the grammar
// really has, not one kept by hand beside it.
func grammarKinds(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			// In a const block a spec without type and values repeats the
			// previous spec's (iota continues).
			var typ ast.Expr
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				if vs.Type != nil || len(vs.Values) > 0 {
					typ = vs.Type
				}
				if id, ok := typ.(*ast.Ident); ok && id.Name == "kind" {
					for _, n := range vs.Names {
						names = append(names, n.Name)
					}
				}
			}
		}
	}
	slices.Sort(names)
	return names
}

// TestReferenceCoversEveryName fails when docs/reference.md leaves out a
// name form the grammar answers: every constant of type kind must have
// an entry in referenceForms whose sample parses to it and whose forms
// all appear in the reference.
func TestReferenceCoversEveryName(t *testing.T) {
	doc, err := os.ReadFile("../docs/reference.md")
	if err != nil {
		t.Fatal(err)
	}
	kinds := grammarKinds(t)
	if len(kinds) < len(referenceForms) {
		t.Fatalf("found only %d kinds in the source (%v); the parser of this test is out of date", len(kinds), kinds)
	}
	for _, name := range kinds {
		e, ok := referenceForms[name]
		if !ok {
			t.Errorf("kind %s: no entry in referenceForms; document its names in docs/reference.md (\"Every name\") and add them here", name)
			continue
		}
		z, rest, isApex := splitZone(e.sample)
		got := apex
		switch {
		case isApex:
		case z == zoneReverse:
			got = parseReverse(rest).kind
		default:
			got = parse(z, rest).kind
		}
		if got != e.k {
			t.Errorf("kind %s: sample %q parses as kind %d, want %d", name, e.sample, got, e.k)
		}
		for _, f := range e.forms {
			if !strings.Contains(string(doc), f) {
				t.Errorf("kind %s: docs/reference.md does not mention %s", name, f)
			}
		}
	}
	for name := range referenceForms {
		if !slices.Contains(kinds, name) {
			t.Errorf("referenceForms has %s, which is no longer a kind of the grammar", name)
		}
	}
}

// TestReferenceLinks: every relative link of docs/reference.md names a
// file that exists and, with #anchor, a heading of that file (GitHub's
// anchors), so the reference's pointers into DECISIONS.md and the
// package READMEs do not rot when a heading changes.
func TestReferenceLinks(t *testing.T) {
	doc, err := os.ReadFile("../docs/reference.md")
	if err != nil {
		t.Fatal(err)
	}
	links := regexp.MustCompile(`\]\(([^)\s]+)\)`).FindAllStringSubmatch(string(doc), -1)
	if len(links) == 0 {
		t.Fatal("no links found in docs/reference.md")
	}
	for _, m := range links {
		target := m[1]
		if strings.Contains(target, "://") {
			continue
		}
		path, anchor, _ := strings.Cut(target, "#")
		file := "../docs/reference.md"
		if path != "" {
			file = filepath.Join("../docs", path)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			if info, serr := os.Stat(file); serr == nil && info.IsDir() {
				continue
			}
			t.Errorf("link %s: %v", target, err)
			continue
		}
		if anchor != "" && !slices.Contains(headingAnchors(string(data)), anchor) {
			t.Errorf("link %s: %s has no heading with anchor %q", target, file, anchor)
		}
	}
}

// headingAnchors are the anchors GitHub gives a Markdown file's headings:
// lowercase, punctuation dropped, spaces as '-', repeats numbered.
func headingAnchors(md string) []string {
	var out []string
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteByte('-')
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			out = append(out, fmt.Sprintf("%s-%d", a, n))
		} else {
			out = append(out, a)
		}
		seen[a]++
	}
	return out
}
