package main

import (
	"os"
	"strings"
	"testing"
)

// The README's flag table is generated from settingTable, with each
// flag's help and default as --help shows them.
const (
	readmePath       = "../../README.md"
	readmeTableBegin = "<!-- The flag table is generated from cmd/meshdns/settingtable.go: UPDATE_README=1 go test ./cmd/meshdns -run TestREADMEFlagTable -->"
	readmeTableEnd   = "<!-- end of the generated flag table -->"
)

// flagTable is the README's flag table: one row per setting, in table
// order, with its default, reload class and --help text.
func flagTable() string {
	cmd := newRootCmd(nil, nil, func(*options) error { return nil })
	var b strings.Builder
	b.WriteString("| flag | default | on SIGHUP | meaning |\n|---|---|---|---|\n")
	for _, s := range settingTable {
		f := cmd.Flags().Lookup(s.name)
		def := s.docDefault
		if def == "" {
			switch d := s.def.(type) {
			case []string:
				quoted := make([]string, len(d))
				for i, v := range d {
					quoted[i] = "`" + v + "`"
				}
				def = strings.Join(quoted, ", ")
			case string:
				if d != "" {
					def = "`" + d + "`"
				}
			default:
				def = "`" + f.DefValue + "`"
			}
		}
		reload := "applied"
		if s.class == restart {
			reload = "needs a restart"
		}
		b.WriteString("| `--" + s.name + "` | " + def + " | " + reload + " | " + strings.ReplaceAll(f.Usage, "|", `\|`) + " |\n")
	}
	return b.String()
}

func TestREADMEFlagTable(t *testing.T) {
	data, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i, j := strings.Index(text, readmeTableBegin), strings.Index(text, readmeTableEnd)
	if i < 0 || j < i {
		t.Fatalf("%s: no generated flag table between %q and %q", readmePath, readmeTableBegin, readmeTableEnd)
	}
	start := i + len(readmeTableBegin) + 1
	got, want := text[start:j], flagTable()
	if got == want {
		return
	}
	if os.Getenv("UPDATE_README") != "" {
		if err := os.WriteFile(readmePath, []byte(text[:start]+want+text[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the flag table of %s", readmePath)
		return
	}
	gotLines, wantLines := strings.Split(got, "\n"), strings.Split(want, "\n")
	for k := range max(len(gotLines), len(wantLines)) {
		var g, w string
		if k < len(gotLines) {
			g = gotLines[k]
		}
		if k < len(wantLines) {
			w = wantLines[k]
		}
		if g != w {
			t.Errorf("%s: the flag table differs from the settings at line %d:\n README: %s\n   want: %s", readmePath, k+1, g, w)
			break
		}
	}
	t.Errorf("run UPDATE_README=1 go test ./cmd/meshdns -run TestREADMEFlagTable to rewrite it")
}
