package main

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

	"github.com/meshdns/meshdns/registry"
)

// Peer addresses. Every org's /48 reserves one /64 for WireGuard peers,
// <network>:fffe::/64 (fdaa:0:18:fffe::/64 for fdaa:0:18::/48), so peers
// do not collide with machine addresses, which the writers refuse there
// (raw writes could still put one there: docs/addresses.md), nor with
// the org's DNS address <network>::3 in subnet 0. Inside it,
// addresses are handed out from ::2 upwards, taking the lowest one no peer
// of the org holds: ::0 is the subnet-router anycast address and ::1 is
// left for a gateway's own tunnel address.
// (registry.PeerSubnet; the writers refuse machine addresses in it).
var peerSubnet = registry.PeerSubnet

// orgDNSAddr is an org's DNS/API address, <network>::3, where its WireGuard
// clients ask (SPEC §1).
func orgDNSAddr(network netip.Prefix) netip.Addr {
	b := network.Masked().Addr().As16()
	b[15] = 3
	return netip.AddrFrom16(b)
}

// nextPeerAddr returns the lowest address from ::2 of subnet that is not
// in used. It always finds one: used holds fewer addresses than a /64.
func nextPeerAddr(subnet netip.Prefix, used map[netip.Addr]bool) netip.Addr {
	a := subnet.Addr().Next().Next()
	for used[a] {
		a = a.Next()
	}
	return a
}

// errPeerExists is returned by createPeer for a name already registered.
var errPeerExists = errors.New("already exists")

// createPeer allocates an address for a new peer of org and registers it
// with the public key of keys, in one etcd transaction that succeeds only if
// nothing it decided on changed since it read the registry:
//   - the org's value (its network) is the one the address was chosen from;
//   - the peer's key does not exist (its create revision is 0), so a create
//     never silently replaces a peer and cuts its client off;
//   - no key under peers/<org>/ was written since the read, so two
//     concurrent creates can never hand out the same address.
//
// A create that loses a race reads again and retries with a fresh address,
// with a short random backoff so that racing creators spread out; every
// round lets at least one of them through. It returns the client
// configuration to print.
func createPeer(ctx context.Context, cli *clientv3.Client, prefix, org, name, region string, keys wgKeyPair) (wgClientConfig, error) {
	orgKey := prefix + registry.OrgKey(org).Path()
	peerKey := prefix + registry.PeerKey(org, name).Path()
	peersDir := prefix + "peers/" + org + "/"
	gatewayKey := prefix + registry.GatewayKey(region).Path()
	for attempt := 0; ; attempt++ {
		// One read at one revision: the org, its peers, the gateway.
		read, err := cli.Txn(ctx).Then(
			clientv3.OpGet(orgKey),
			clientv3.OpGet(peersDir, clientv3.WithPrefix()),
			clientv3.OpGet(gatewayKey),
		).Commit()
		if err != nil {
			return wgClientConfig{}, fmt.Errorf("read org %s: %w", org, err)
		}
		rev := read.Header.Revision
		orgKVs := read.Responses[0].GetResponseRange().Kvs
		peerKVs := read.Responses[1].GetResponseRange().Kvs
		gwKVs := read.Responses[2].GetResponseRange().Kvs

		network, err := decodeOrgNetwork(org, orgKVs)
		if err != nil {
			return wgClientConfig{}, err
		}
		gw, err := decodeGateway(region, gwKVs)
		if err != nil {
			return wgClientConfig{}, err
		}
		subnet := peerSubnet(network)
		used := make(map[netip.Addr]bool, len(peerKVs))
		for _, kv := range peerKVs {
			if string(kv.Key) == peerKey {
				return wgClientConfig{}, fmt.Errorf("peer %s of org %s: %w (remove it first with meshctl peer rm %s --org %s)", name, org, errPeerExists, name, org)
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
		p := registry.Peer{Org: org, Name: name, IP: nextPeerAddr(subnet, used), Region: region,
			PublicKey: keys.Public, UpdatedAt: time.Now().UTC()}
		if err := firstError(p.Validate(), registry.CheckAddrIn("ip", p.IP, network)); err != nil {
			return wgClientConfig{}, err
		}
		data, err := json.Marshal(p)
		if err != nil {
			return wgClientConfig{}, fmt.Errorf("encode peer %s: %w", name, err)
		}
		txn, err := cli.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(orgKey), "=", orgKVs[0].ModRevision),
			clientv3.Compare(clientv3.CreateRevision(peerKey), "=", 0),
			clientv3.Compare(clientv3.ModRevision(peersDir), "<", rev+1).WithPrefix(),
		).Then(clientv3.OpPut(peerKey, string(data))).Commit()
		if err != nil {
			return wgClientConfig{}, fmt.Errorf("write peer %s: %w", name, err)
		}
		if txn.Succeeded {
			return wgClientConfig{
				Org: org, Peer: name, Region: region, PrivateKey: keys.Private,
				Address: p.IP, DNS: orgDNSAddr(network), Gateway: *gw, AllowedIPs: network,
			}, nil
		}
		if err := backoff(ctx, attempt); err != nil {
			return wgClientConfig{}, fmt.Errorf("create peer %s: org %s kept changing: %w", name, org, err)
		}
	}
}

// backoff waits a random time that grows with the attempt, up to ~100 ms.
func backoff(ctx context.Context, attempt int) error {
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
		return netip.Prefix{}, fmt.Errorf("org %q: not registered (create it first with meshctl org put)", org)
	}
	v, err := registry.Decode(registry.OrgKey(org), kvs[0].Value)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("org %q holds an invalid value: %w", org, err)
	}
	return v.(*registry.OrgValue).Network, nil
}

func decodeGateway(region string, kvs []*mvccpb.KeyValue) (*registry.Gateway, error) {
	if len(kvs) == 0 {
		return nil, fmt.Errorf("region %s has no WireGuard gateway (register one with meshctl gateway put %s --endpoint ADDR:PORT --public-key KEY)", region, region)
	}
	v, err := registry.Decode(registry.GatewayKey(region), kvs[0].Value)
	if err != nil {
		return nil, fmt.Errorf("the WireGuard gateway of region %s holds an invalid value: %w", region, err)
	}
	return v.(*registry.Gateway), nil
}
