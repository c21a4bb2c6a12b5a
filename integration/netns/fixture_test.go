package netns

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// The registry every test here loads: two orgs that share an app name
// (web), each with an app the other lacks, machines in several regions and
// states, peers, and "client" machines whose addresses the askers use.

type fxMachine struct {
	Org          string            `json:"org"`
	App          string            `json:"app"`
	ID           string            `json:"id"`
	Region       string            `json:"region"`
	IP           string            `json:"ip"`
	State        string            `json:"state"`
	ProcessGroup string            `json:"process_group,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
}

type fxPeer struct {
	Org    string `json:"org"`
	Name   string `json:"name"`
	IP     string `json:"ip"`
	Region string `json:"region,omitempty"`
}

type fxOrg struct {
	Name    string `json:"name"`
	Network string `json:"network"`
	prefix  string // the network without "::/48", to build addresses
}

var (
	alpha = fxOrg{Name: "alpha", Network: "fdaa:0:a::/48", prefix: "fdaa:0:a"}
	beta  = fxOrg{Name: "beta", Network: "fdaa:0:b::/48", prefix: "fdaa:0:b"}
)

func (o fxOrg) dns() string { return o.prefix + "::3" }

var fxMachines = []fxMachine{
	{Org: "alpha", App: "web", ID: "a1", Region: "syd", IP: "fdaa:0:a:a7b:1::2", State: "started", Metadata: map[string]string{"role": "primary"}},
	{Org: "alpha", App: "web", ID: "a2", Region: "ams", IP: "fdaa:0:a:a7b:1::3", State: "started", ProcessGroup: "worker"},
	{Org: "alpha", App: "web", ID: "a3", Region: "iad", IP: "fdaa:0:a:a7b:1::4", State: "started"},
	{Org: "alpha", App: "web", ID: "a4", Region: "fra", IP: "fdaa:0:a:a7b:1::5", State: "stopped"},
	{Org: "alpha", App: "db", ID: "a5", Region: "ams", IP: "fdaa:0:a:a7b:2::2", State: "started"},
	{Org: "alpha", App: "client", ID: "c1", Region: "syd", IP: "fdaa:0:a:a7b:9::2", State: "started"},
	{Org: "alpha", App: "client", ID: "c2", Region: "ams", IP: "fdaa:0:a:a7b:9::3", State: "started"},
	{Org: "beta", App: "web", ID: "b1", Region: "ams", IP: "fdaa:0:b:a7b:1::2", State: "started"},
	{Org: "beta", App: "web", ID: "b2", Region: "syd", IP: "fdaa:0:b:a7b:1::3", State: "started", ProcessGroup: "worker"},
	{Org: "beta", App: "secret", ID: "b3", Region: "ord", IP: "fdaa:0:b:a7b:2::2", State: "started", Metadata: map[string]string{"role": "primary"}},
	{Org: "beta", App: "client", ID: "c3", Region: "ord", IP: "fdaa:0:b:a7b:9::2", State: "started"},
}

var fxPeers = []fxPeer{
	{Org: "alpha", Name: "laptop", IP: "fdaa:0:a:fffe::10", Region: "ams"},
	{Org: "alpha", Name: "interactive-7f3a", IP: "fdaa:0:a:fffe::11", Region: "syd"},
	{Org: "beta", Name: "ci", IP: "fdaa:0:b:fffe::10", Region: "ord"},
}

// fxFlycast are the apps with a key and a Flycast address.
var fxFlycast = map[string]string{"alpha/web": "fdaa:0:a:0:1::5"}

// fxLoad is the fixture as a `meshctl load` document.
func fxLoad() string {
	type app struct {
		Org     string `json:"org"`
		Name    string `json:"name"`
		Flycast string `json:"flycast,omitempty"`
	}
	doc := struct {
		Orgs     []fxOrg     `json:"orgs"`
		Apps     []app       `json:"apps"`
		Machines []fxMachine `json:"machines"`
		Peers    []fxPeer    `json:"peers"`
	}{Orgs: []fxOrg{alpha, beta}, Machines: fxMachines, Peers: fxPeers}
	for k, fc := range fxFlycast {
		org, name, _ := strings.Cut(k, "/")
		doc.Apps = append(doc.Apps, app{Org: org, Name: name, Flycast: fc})
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func fxMachinesOf(org, app string, all bool) []fxMachine {
	var ms []fxMachine
	for _, m := range fxMachines {
		if m.Org == org && (app == "" || m.App == app) && (all || m.State == "started") {
			ms = append(ms, m)
		}
	}
	// Sorted by app, then id: the order of every list in SPEC §2.
	slices.SortFunc(ms, func(a, b fxMachine) int { return strings.Compare(a.App+"/"+a.ID, b.App+"/"+b.ID) })
	return ms
}

func fxIPs(ms []fxMachine) []string {
	var ips []string
	for _, m := range ms {
		ips = append(ips, m.IP)
	}
	return ips
}

func fxVMs(org, app string, all bool) string {
	var parts []string
	for _, m := range fxMachinesOf(org, app, all) {
		parts = append(parts, m.ID+" "+m.Region)
	}
	return strings.Join(parts, ",")
}

func fxRegions(org, app string, all bool) string {
	var rs []string
	for _, m := range fxMachinesOf(org, app, all) {
		rs = append(rs, m.Region)
	}
	slices.Sort(rs)
	return strings.Join(slices.Compact(rs), ",")
}

func fxInstances(org string, all bool) string {
	var parts []string
	for _, m := range fxMachinesOf(org, "", all) {
		parts = append(parts, fmt.Sprintf("instance=%s,app=%s,ip=%s,region=%s", m.ID, m.App, m.IP, m.Region))
	}
	return strings.Join(parts, ";")
}

func fxApps(org string) string {
	var apps []string
	for _, m := range fxMachines {
		if m.Org == org {
			apps = append(apps, m.App)
		}
	}
	slices.Sort(apps)
	return strings.Join(slices.Compact(apps), ",")
}

func fxPeersOf(org string) []fxPeer {
	var ps []fxPeer
	for _, p := range fxPeers {
		if p.Org == org {
			ps = append(ps, p)
		}
	}
	return ps
}

func fxPeerList(org string) string {
	var names []string
	for _, p := range fxPeersOf(org) {
		if !strings.HasPrefix(p.Name, "interactive-") {
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

// fxNames are the labels and addresses an org's registry holds, for
// finding them in another org's answers.
func fxNames(org fxOrg) []string {
	names := []string{org.Name, org.prefix + ":"}
	for _, m := range fxMachines {
		if m.Org == org.Name {
			names = append(names, m.App, m.ID, m.IP)
		}
	}
	for _, p := range fxPeersOf(org.Name) {
		names = append(names, p.Name, p.IP)
	}
	return names
}
