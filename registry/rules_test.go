package registry

import (
	"go/ast"
	"go/parser"
	"go/token"
	"testing"
)

// TestServingRulesLiveInRulesGo: the store (state.go) and the reconcile
// (compare.go, reconcile.go) decide what is served only through rules.go.
// A placement check, a claim order or a Deployed test written into one of
// them directly is a second copy of a rule, which the other side would not
// follow: the reconcile would then miss drift or report drift that is not
// there and reload every host.
func TestServingRulesLiveInRulesGo(t *testing.T) {
	rules := map[string]string{
		"CheckAddrIn":  "machinePlaced, peerPlaced or appValueUsable",
		"claimsBefore": "holderOf",
		"Deployed":     "machineServed",
		"DeepEqual":    "the same* functions or diffOrg",
	}
	fset := token.NewFileSet()
	for _, file := range []string{"state.go", "compare.go", "reconcile.go"} {
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			name := ""
			switch fn := call.Fun.(type) {
			case *ast.Ident:
				name = fn.Name
			case *ast.SelectorExpr:
				name = fn.Sel.Name
			}
			if use, ok := rules[name]; ok {
				t.Errorf("%s calls %s: a serving rule belongs in rules.go; use %s", fset.Position(call.Pos()), name, use)
			}
			return true
		})
	}
}

// TestSameServedSeesEveryServedChange: sameServed (which lets a full load
// keep an org's serial) and DiffSnapshots agree, both being diffOrg.
func TestSameServedSeesEveryServedChange(t *testing.T) {
	base := `
orgs/acme {"network":"fdaa:0:18::/48"}
apps/acme/web {"flycast":"fdaa:0:18:0:1::5"}
machines/acme/web/0a01 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started","checks":{"http":"passing"}}
peers/acme/alice {"ip":"fdaa:0:18:fffe::7"}`
	for _, tc := range []struct{ name, text string }{
		{"same", base},
		{"flycast", `apps/acme/web {"flycast":"fdaa:0:18:0:1::6"}`},
		{"machine state", `machines/acme/web/0a01 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"stopped","checks":{"http":"passing"}}`},
		{"check", `machines/acme/web/0a01 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started","checks":{"http":"critical"}}`},
		{"new machine", `machines/acme/web/0a02 {"region":"ams","ip":"fdaa:0:18:a7b:1::3","state":"started"}`},
		{"peer", `peers/acme/alice {"ip":"fdaa:0:18:fffe::8"}`},
		{"new app", `apps/acme/db {}`},
	} {
		a := storeFromText(t, base)
		b := storeFromText(t, base+"\n"+tc.text)
		diff := DiffSnapshots(a.Snapshot(), b.Snapshot())
		same := sameServed(a.Snapshot().Org("acme"), b.Snapshot().Org("acme"))
		if same != (len(diff) == 0) || (tc.name == "same") != same {
			t.Errorf("%s: sameServed %v, DiffSnapshots %v", tc.name, same, diff)
		}
	}
}

func storeFromText(t *testing.T, text string) *Store {
	t.Helper()
	evs, err := ParseText(DefaultPrefix, text)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(DefaultPrefix)
	s.Replace(int64(len(evs)), evs)
	return s
}
