package registry

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/meshdns/meshdns/internal/etcdtest"
)

// seedPeerOrg writes org acme (fdaa:0:18::/48) and the gateway of ams.
func seedPeerOrg(t *testing.T, w *Writer) {
	t.Helper()
	ctx := ctxT(t)
	if err := w.PutOrg(ctx, OrgValue{Name: "acme", Network: acmeNet}); err != nil {
		t.Fatal(err)
	}
	if err := w.PutGateway(ctx, Gateway{Region: "ams", Endpoint: "203.0.113.7:51820", PublicKey: wgKey}); err != nil {
		t.Fatal(err)
	}
}

// TestCreatePeerRace: two creates that both read the registry before
// either writes (the worst interleaving, forced with the hook between
// CreatePeer's read and its write) get different addresses: the one that
// commits second finds its guard broken, reads again and takes the next.
func TestCreatePeerRace(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	w, other := NewWriter(cli, DefaultPrefix), NewWriter(cli, DefaultPrefix)
	seedPeerOrg(t, w)
	ctx := ctxT(t)

	var second CreatedPeer
	var secondErr error
	rounds := 0
	w.beforePeerCommit = func() {
		rounds++
		if rounds == 1 { // w has read and chosen ::2; other takes it first
			second, secondErr = other.CreatePeer(ctx, "acme", "bob", "ams", wgKey)
		}
	}
	first, err := w.CreatePeer(ctx, "acme", "alice", "ams", wgKey)
	if err != nil || secondErr != nil {
		t.Fatalf("creates: %v, %v", err, secondErr)
	}
	if rounds != 2 {
		t.Errorf("the losing create committed after %d reads, want 2 (its first write must fail)", rounds)
	}
	if second.Peer.IP != addr("fdaa:0:18:fffe::2") || first.Peer.IP != addr("fdaa:0:18:fffe::3") {
		t.Errorf("alice %s, bob %s; want bob ::2 (committed first) and alice ::3", first.Peer.IP, second.Peer.IP)
	}
	for _, name := range []string{"alice", "bob"} {
		v, err := w.Get(ctx, PeerKey("acme", name))
		if err != nil {
			t.Fatal(err)
		}
		if p := v.(*Peer); p.Region != "ams" || p.PublicKey != wgKey || p.UpdatedAt.IsZero() {
			t.Errorf("%s stored as %+v", name, p)
		}
	}
	if first.Network != acmeNet || first.Gateway.Endpoint != "203.0.113.7:51820" {
		t.Errorf("created %+v, want the org's network and the ams gateway", first)
	}
}

// TestCreatePeerConcurrent: many creates at once, from separate writers,
// each get their own address, filling the lowest ones without a gap.
func TestCreatePeerConcurrent(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	seedPeerOrg(t, NewWriter(cli, DefaultPrefix))
	ctx := ctxT(t)
	const n = 10
	ips := make([]netip.Addr, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p, err := NewWriter(cli, DefaultPrefix).CreatePeer(ctx, "acme", fmt.Sprintf("p%d", i), "ams", wgKey)
			if err != nil {
				t.Error(err)
			}
			ips[i] = p.Peer.IP
		})
	}
	wg.Wait()
	slices.SortFunc(ips, netip.Addr.Compare)
	for i, a := range ips {
		if want := netip.MustParseAddr(fmt.Sprintf("fdaa:0:18:fffe::%x", i+2)); a != want {
			t.Errorf("addresses %v, want ::2 to ::%x once each", ips, n+1)
			break
		}
	}
}

func TestCreatePeerRejects(t *testing.T) {
	e := etcdtest.Embedded(t)
	cli := e.Client(t)
	w := NewWriter(cli, DefaultPrefix)
	seedPeerOrg(t, w)
	ctx := ctxT(t)
	// A peer written by hand, outside the peer subnet's start, holds ::2
	// all the same; a value in the subnet that fails other rules holds its
	// address too.
	if _, err := cli.Put(ctx, DefaultPrefix+PeerKey("acme", "raw").Path(), `{"ip":"fdaa:0:18:fffe::2","region":"nowhere!"}`); err != nil {
		t.Fatal(err)
	}
	p, err := w.CreatePeer(ctx, "acme", "alice", "ams", wgKey)
	if err != nil || p.Peer.IP != addr("fdaa:0:18:fffe::3") {
		t.Fatalf("create next to an invalid peer: %+v, %v; want ::3", p.Peer, err)
	}
	_, err = w.CreatePeer(ctx, "acme", "alice", "ams", wgKey)
	if !errors.Is(err, ErrExists) {
		t.Errorf("second create of alice: %v, want ErrExists", err)
	}
	checkErr(t, err, "peer alice of org acme: already exists")
	_, err = w.CreatePeer(ctx, "acme", "bob", "syd", wgKey)
	if !errors.Is(err, ErrNoGateway) {
		t.Errorf("create in a region without gateway: %v, want ErrNoGateway", err)
	}
	_, err = w.CreatePeer(ctx, "initech", "bob", "ams", wgKey)
	checkErr(t, err, `org "initech": not registered`)
	_, err = w.CreatePeer(ctx, "acme", "Bob", "ams", wgKey)
	checkErr(t, err, `peer "Bob"`)
	_, err = w.CreatePeer(ctx, "acme", "bob", "ams", "not-a-key")
	checkErr(t, err, "public_key")
	if _, err := w.Get(ctx, PeerKey("acme", "bob")); !errors.Is(err, ErrNotFound) {
		t.Errorf("a rejected create wrote bob: %v", err)
	}
}

func TestDir(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{Dir(KindPeer, "acme"), "peers/acme/"},
		{Dir(KindMachine, "acme", "web"), "machines/acme/web/"},
		{Dir(KindOrg), "orgs/"},
		{Dir(KindGateway), "gateways/"},
	} {
		if tc.got != tc.want {
			t.Errorf("Dir = %q, want %q", tc.got, tc.want)
		}
	}
	if d, k := Dir(KindPeer, "acme"), PeerKey("acme", "alice").Path(); d+"alice" != k {
		t.Errorf("Dir %q is not the directory of %q", d, k)
	}
}
