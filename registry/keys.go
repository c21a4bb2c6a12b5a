package registry

import (
	"fmt"
	"strings"
)

// DefaultPrefix is the etcd key prefix every registry key lives under.
const DefaultPrefix = "/meshdns/v1/"

// Kind is the kind of object a registry key holds.
type Kind uint8

const (
	KindOrg Kind = iota + 1
	KindApp
	KindMachine
	KindPeer
	KindGateway
	KindRegion
)

var kindDirs = [...]string{
	KindOrg:     "orgs",
	KindApp:     "apps",
	KindMachine: "machines",
	KindPeer:    "peers",
	KindGateway: "gateways",
	KindRegion:  "regions",
}

// segments is how many path segments follow the kind directory.
var kindSegments = [...]int{
	KindOrg:     1,
	KindApp:     2,
	KindMachine: 3,
	KindPeer:    2,
	KindGateway: 1,
	KindRegion:  1,
}

func (k Kind) String() string {
	if int(k) < len(kindDirs) && k > 0 {
		return kindDirs[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Key names one registry object. Org is empty for gateways and regions;
// App is set for apps and machines; Name is the machine id, peer name,
// region code or gateway region (and repeats the org or app name for those
// kinds, so Name always identifies the object within its parent).
type Key struct {
	Kind Kind
	Org  string
	App  string
	Name string
}

// OrgKey, AppKey, ... build keys for the writer API.
func OrgKey(org string) Key              { return Key{Kind: KindOrg, Name: org} }
func AppKey(org, app string) Key         { return Key{Kind: KindApp, Org: org, App: app, Name: app} }
func MachineKey(org, app, id string) Key { return Key{Kind: KindMachine, Org: org, App: app, Name: id} }
func PeerKey(org, peer string) Key       { return Key{Kind: KindPeer, Org: org, Name: peer} }
func GatewayKey(region string) Key       { return Key{Kind: KindGateway, Name: region} }
func RegionKey(code string) Key          { return Key{Kind: KindRegion, Name: code} }

// Path is the key's path below the registry prefix, e.g.
// "machines/acme/web/3d8d9e0b2ee489".
func (k Key) Path() string {
	switch k.Kind {
	case KindOrg, KindGateway, KindRegion:
		return kindDirs[k.Kind] + "/" + k.Name
	case KindApp:
		return "apps/" + k.Org + "/" + k.App
	case KindMachine:
		return "machines/" + k.Org + "/" + k.App + "/" + k.Name
	case KindPeer:
		return "peers/" + k.Org + "/" + k.Name
	}
	return ""
}

func (k Key) String() string { return k.Path() }

// Dir is the directory below the registry prefix that holds the keys of
// kind, narrowed by the leading names of their paths (an org, then an
// app): Dir(KindPeer, "acme") is "peers/acme/", Dir(KindMachine) is
// "machines/". It is what List and prefix reads take.
func Dir(kind Kind, names ...string) string {
	d := kindDirs[kind] + "/"
	for _, n := range names {
		d += n + "/"
	}
	return d
}

// ParseKey splits an etcd key (with the registry prefix) into a Key. It
// checks the key's shape and the syntax of every name in it, so a Key that
// parsed can be trusted as far as its names go.
func ParseKey(prefix, key string) (Key, error) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return Key{}, fmt.Errorf("key %q: not under prefix %q", key, prefix)
	}
	dir, tail, _ := strings.Cut(rest, "/")
	var kind Kind
	for k := KindOrg; k <= KindRegion; k++ {
		if kindDirs[k] == dir {
			kind = k
			break
		}
	}
	if kind == 0 {
		return Key{}, fmt.Errorf("key %q: unknown kind %q (want orgs, apps, machines, peers, gateways or regions)", key, dir)
	}
	n := strings.Count(tail, "/") + 1
	if n != kindSegments[kind] || tail == "" {
		return Key{}, fmt.Errorf("key %q: %s keys have %d name segment(s) after %q", key, kind, kindSegments[kind], dir+"/")
	}
	// The name segments, without allocating (a key per event).
	var seg [3]string
	for i, rest := 0, tail; i < n; i++ {
		seg[i], rest, _ = strings.Cut(rest, "/")
	}
	parts := seg[:n]
	var k Key
	var err error
	switch kind {
	case KindOrg:
		k, err = OrgKey(parts[0]), CheckLabel("org", parts[0])
	case KindApp:
		k = AppKey(parts[0], parts[1])
		err = firstErr(CheckLabel("org", parts[0]), CheckLabel("app", parts[1]))
	case KindMachine:
		k = MachineKey(parts[0], parts[1], parts[2])
		err = firstErr(CheckLabel("org", parts[0]), CheckLabel("app", parts[1]), CheckMachineID(parts[2]))
	case KindPeer:
		k = PeerKey(parts[0], parts[1])
		err = firstErr(CheckLabel("org", parts[0]), CheckLabel("peer", parts[1]))
	case KindGateway:
		k, err = GatewayKey(parts[0]), CheckRegionCode(parts[0])
	case KindRegion:
		k, err = RegionKey(parts[0]), CheckRegionCode(parts[0])
	}
	if err != nil {
		return Key{}, fmt.Errorf("key %q: %w", key, err)
	}
	return k, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
