package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Errors of CreatePeer, for callers that add advice to them.
var (
	// ErrExists: the peer name is registered already.
	ErrExists = errors.New("already exists")
	// ErrNoGateway: the region has no WireGuard gateway to connect through.
	ErrNoGateway = errors.New("has no WireGuard gateway")
)

// CreatedPeer is what CreatePeer wrote, with what it read to decide it.
type CreatedPeer struct {
	Peer    Peer         // as written, with its allocated address
	Network netip.Prefix // the org's network the address was chosen from
	Gateway Gateway      // the WireGuard gateway of the peer's region
}

// NextPeerAddr returns the lowest address from ::2 of subnet (an org's
// PeerSubnet) that is not in used: ::0 is the subnet-router anycast
// address and ::1 is left for a gateway's own tunnel address. It always
// finds one: used holds fewer addresses than a /64.
func NextPeerAddr(subnet netip.Prefix, used map[netip.Addr]bool) netip.Addr {
	a := subnet.Addr().Next().Next()
	for used[a] {
		a = a.Next()
	}
	return a
}

// CreatePeer registers a new WireGuard peer of org, connecting through the
// gateway of region, with publicKey, at the lowest free address of the
// org's peer subnet <network>:fffe::/64. It reads the org, its peers and
// the gateway at one revision and writes in one transaction that succeeds
// only if nothing it decided on changed since:
//   - the org's value (its network) is the one the address was chosen from;
//   - the peer's key does not exist, so a create never silently replaces a
//     peer and cuts its client off (ErrExists);
//   - no key under the org's peers was written since the read, so two
//     concurrent creates never hand out the same address.
//
// A create that loses a race reads again and retries with a fresh address,
// after a short random backoff so that racing creators spread out; every
// round lets at least one of them through. It gives up only when ctx ends.
func (w *Writer) CreatePeer(ctx context.Context, org, name, region, publicKey string) (CreatedPeer, error) {
	if err := firstErr(CheckLabel("org", org), CheckLabel("peer", name), CheckRegionCode(region)); err != nil {
		return CreatedPeer{}, err
	}
	orgKey := w.key(OrgKey(org))
	peerKey := w.key(PeerKey(org, name))
	peersDir := w.prefix + Dir(KindPeer, org)
	gatewayKey := w.key(GatewayKey(region))
	for attempt := 0; ; attempt++ {
		// One read at one revision: the org, its peers, the gateway.
		read, err := w.cli.Txn(ctx).Then(
			clientv3.OpGet(orgKey),
			clientv3.OpGet(peersDir, clientv3.WithPrefix()),
			clientv3.OpGet(gatewayKey),
		).Commit()
		if err != nil {
			return CreatedPeer{}, fmt.Errorf("read org %s: %w", org, err)
		}
		rev := read.Header.Revision
		orgKVs := read.Responses[0].GetResponseRange().Kvs
		peerKVs := read.Responses[1].GetResponseRange().Kvs
		gwKVs := read.Responses[2].GetResponseRange().Kvs

		network, err := decodeOrgNetwork(org, orgKVs)
		if err != nil {
			return CreatedPeer{}, err
		}
		gw, err := decodeGateway(region, gwKVs)
		if err != nil {
			return CreatedPeer{}, err
		}
		subnet := PeerSubnet(network)
		used := make(map[netip.Addr]bool, len(peerKVs))
		for _, kv := range peerKVs {
			if string(kv.Key) == peerKey {
				return CreatedPeer{}, fmt.Errorf("peer %s of org %s: %w", name, org, ErrExists)
			}
			// Any value that names an address holds it, even one that
			// fails another rule: fixed later, it would collide.
			var v struct {
				IP string `json:"ip"`
			}
			if json.Unmarshal(kv.Value, &v) == nil {
				if a, err := netip.ParseAddr(v.IP); err == nil && subnet.Contains(a) {
					used[a] = true
				}
			}
		}
		p := Peer{Org: org, Name: name, IP: NextPeerAddr(subnet, used), Region: region,
			PublicKey: publicKey, UpdatedAt: w.now().UTC()}
		if err := firstErr(p.Validate(), CheckAddrIn("ip", p.IP, network)); err != nil {
			return CreatedPeer{}, err
		}
		data, err := json.Marshal(p)
		if err != nil {
			return CreatedPeer{}, fmt.Errorf("encode peer %s: %w", name, err)
		}
		if w.beforePeerCommit != nil {
			w.beforePeerCommit()
		}
		txn, err := w.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(orgKey), "=", orgKVs[0].ModRevision),
			clientv3.Compare(clientv3.CreateRevision(peerKey), "=", 0),
			w.unchangedSince(Dir(KindPeer, org), rev),
		).Then(clientv3.OpPut(peerKey, string(data))).Commit()
		if err != nil {
			return CreatedPeer{}, fmt.Errorf("write peer %s: %w", name, err)
		}
		if txn.Succeeded {
			return CreatedPeer{Peer: p, Network: network, Gateway: *gw}, nil
		}
		if err := allocBackoff(ctx, attempt); err != nil {
			return CreatedPeer{}, fmt.Errorf("create peer %s: org %s kept changing: %w", name, org, err)
		}
	}
}

// allocBackoff waits a random time that grows with the attempt, up to ~100 ms.
func allocBackoff(ctx context.Context, attempt int) error {
	limit := time.Millisecond << min(attempt, 7)
	t := time.NewTimer(rand.N(limit) + time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func decodeOrgNetwork(org string, kvs []*mvccpb.KeyValue) (netip.Prefix, error) {
	if len(kvs) == 0 {
		return netip.Prefix{}, fmt.Errorf("org %q: not registered (create it first with its network)", org)
	}
	v, err := Decode(OrgKey(org), kvs[0].Value)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("org %q holds an invalid value: %w", org, err)
	}
	return v.(*OrgValue).Network, nil
}

func decodeGateway(region string, kvs []*mvccpb.KeyValue) (*Gateway, error) {
	if len(kvs) == 0 {
		return nil, fmt.Errorf("region %s %w", region, ErrNoGateway)
	}
	v, err := Decode(GatewayKey(region), kvs[0].Value)
	if err != nil {
		return nil, fmt.Errorf("the WireGuard gateway of region %s holds an invalid value: %w", region, err)
	}
	return v.(*Gateway), nil
}

// Revoke ends a lease (from Grant) at once, deleting the keys attached to it.
func (w *Writer) Revoke(ctx context.Context, id clientv3.LeaseID) error {
	if _, err := w.cli.Revoke(ctx, id); err != nil {
		return fmt.Errorf("revoke lease %016x: %w", int64(id), err)
	}
	return nil
}
