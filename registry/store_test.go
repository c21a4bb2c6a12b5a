package registry

import (
	"net/netip"
	"testing"
)

func TestSmoke(t *testing.T) {
	snap, st, err := SnapshotFromText(`
orgs/acme {"network":"fdaa:0:18::/48"}
orgs/other {"network":"fdaa:0:19::/48"}
machines/acme/web/0a1 {"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}
machines/acme/web/0a2 {"region":"iad","ip":"fdaa:0:19:a7b:1::2","state":"started"}
`)
	if err != nil {
		t.Fatal(err)
	}
	o := snap.OrgOf(netip.MustParseAddr("fdaa:0:18::99"))
	if o == nil || o.Name != "acme" {
		t.Fatalf("org: %v", o)
	}
	a := o.App("web")
	if a == nil || len(a.Machines) != 1 {
		t.Fatalf("app %+v", a)
	}
	t.Log(st.Invalid(), o.AppNames())
}
