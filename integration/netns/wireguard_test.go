package netns

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/integration/digtest"
)

const (
	gatewayPort = 51820
	// The underlay between the WireGuard client and the gateway: the
	// "internet" side of the gateway, a veth pair with its own addresses.
	gatewayUnderlay = "fd77::1"
	clientUnderlay  = "fd77::2"
)

// TestWireGuardClient is a developer's laptop joining org alpha: meshctl
// peer create prints a wg-quick configuration, a userspace WireGuard client
// in its own namespace is set up from exactly that text (device keys, peer,
// endpoint, keepalive; address, routes and resolv.conf as wg-quick would),
// and talks through a wireguard-go gateway in meshdns's namespace, set up
// from the registry's gateway key and the peer's registered public key.
// The client then resolves .internal names at its org's <network>::3
// through the tunnel, with dig and with the libc resolver.
func TestWireGuardClient(t *testing.T) {
	requireLab(t)
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("WireGuard needs /dev/net/tun (CI=true, so this is an error): %v", err)
		}
		t.Skipf("WireGuard needs /dev/net/tun: %v", err)
	}
	host := startHost(t, "fdaa::3", alpha.dns(), beta.dns())
	host.meshctl(fxLoad(), "load", "-")
	client := addNS(t, "wg")
	connect(t, host.ns, "vwg", client)
	ip(t, host.ns, "-6", "addr", "add", gatewayUnderlay+"/64", "dev", "vwg", "nodad")
	ip(t, client, "-6", "addr", "add", clientUnderlay+"/64", "dev", "eth0", "nodad")

	// The region's gateway, and a peer created against it.
	gwPriv, gwPub, err := newKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	host.meshctl("", "gateway", "put", "ams", "--endpoint", fmt.Sprintf("[%s]:%d", gatewayUnderlay, gatewayPort), "--public-key", gwPub)
	printed := host.meshctl("", "peer", "create", "dev", "--org", alpha.Name, "--region", "ams")
	conf, err := parseWGConfig(printed)
	if err != nil {
		t.Fatalf("meshctl peer create printed a configuration that does not parse: %v\n%s", err, printed)
	}
	t.Logf("meshctl peer create printed:\n%s", strings.ReplaceAll(printed, conf["Interface"]["PrivateKey"], "<private key>"))

	// The gateway admits the peer from the registry alone.
	var peers []listedPeer
	if err := json.Unmarshal([]byte(host.meshctl("", "peer", "list", "--org", alpha.Name, "-o", "json")), &peers); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(peers, func(p listedPeer) bool { return p.Name == "dev" })
	if i < 0 {
		t.Fatalf("peer dev not in the registry: %+v", peers)
	}
	peerIP := peers[i].IP
	gwUAPI, err := gatewayUAPI(gwPriv, gatewayPort, peers[i].PublicKey, peerIP)
	if err != nil {
		t.Fatal(err)
	}
	startWireGuard(t, host.ns, "gw", gwUAPI)
	ip(t, host.ns, "link", "set", "wg0", "up")
	ip(t, host.ns, "-6", "route", "add", peerIP+"/128", "dev", "wg0")

	// The client: the device from the printed text, then what wg-quick
	// does on the host for Address, AllowedIPs and DNS.
	clientUAPI, err := conf.clientUAPI()
	if err != nil {
		t.Fatal(err)
	}
	startWireGuard(t, client, "client", clientUAPI)
	ip(t, client, "-6", "addr", "add", conf["Interface"]["Address"], "dev", "wg0", "nodad")
	ip(t, client, "link", "set", "wg0", "up")
	for _, p := range strings.Split(conf["Peer"]["AllowedIPs"], ",") {
		ip(t, client, "-6", "route", "add", strings.TrimSpace(p), "dev", "wg0")
	}
	resolv := filepath.Join("/etc/netns", client, "resolv.conf")
	if err := os.MkdirAll(filepath.Dir(resolv), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(resolv, []byte("nameserver "+conf["Interface"]["DNS"]+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	dnsAddr := conf["Interface"]["DNS"]
	web := fxIPs(fxMachinesOf(alpha.Name, "web", false))
	wantPeers := fxPeerList(alpha.Name) // before dev: laptop
	wantPeers = strings.Join(slices.Sorted(slices.Values(append(strings.Split(wantPeers, ","), "dev"))), ",")
	checks := []struct {
		args []string
		want func(r *digtest.Result) error
	}{
		{[]string{"@" + dnsAddr, "aaaa", "web.internal"}, wantAAAA(web...)},
		{[]string{"@" + dnsAddr, "aaaa", "web.internal", "+tcp"}, wantAAAA(web...)},
		{[]string{"@" + dnsAddr, "txt", "_peer.internal"}, wantTXT(wantPeers)},
		{[]string{"@" + dnsAddr, "aaaa", "dev._peer.internal"}, wantAAAA(peerIP)},
		{[]string{"@" + dnsAddr, "txt", "_whoami.internal"}, wantTXT(fmt.Sprintf("org=%s,peer=dev,region=ams,ip=%s", alpha.Name, peerIP))},
		{[]string{"aaaa", "db.internal"}, wantAAAA(fxIPs(fxMachinesOf(alpha.Name, "db", false))...)}, // resolv.conf's nameserver
		{[]string{"aaaa", "secret.internal"}, wantStatus("NXDOMAIN")},                                // beta's app
	}
	// The first query also waits for the handshake: poll it.
	first := checks[0]
	err = poll(startupTimeout, func() error {
		r, err := dig(client, first.args...)
		if err != nil {
			return err
		}
		return first.want(r)
	})
	if err != nil {
		t.Fatalf("dig %s through the tunnel: %v", strings.Join(first.args, " "), err)
	}
	for _, c := range checks {
		r, err := dig(client, c.args...)
		if err == nil {
			if r.Server != dnsAddr+"#53" {
				err = fmt.Errorf("answered by %s, want %s", r.Server, dnsAddr)
			} else {
				err = c.want(r)
			}
		}
		if err != nil {
			t.Errorf("dig %s in the client: %v", strings.Join(c.args, " "), err)
		}
	}
	// The answers came through the tunnel: the client has no other route
	// to <network>::3, and its WireGuard device carried them.
	if rx := rxPackets(t, client, "wg0"); rx == 0 {
		t.Errorf("the client's wg0 received no packets")
	}
	// The libc resolver, through /etc/netns/<ns>/resolv.conf, as any
	// program on the laptop would resolve names.
	out := run(t, "", "ip", "netns", "exec", client, "getent", "ahostsv6", "web.internal")
	for _, a := range web {
		if !strings.Contains(out, a) {
			t.Errorf("getent ahostsv6 web.internal: %s missing from\n%s", a, out)
		}
	}
}

// rxPackets is how many packets dev in ns has received.
func rxPackets(t *testing.T, ns, dev string) int {
	t.Helper()
	var links []struct {
		Stats struct {
			RX struct {
				Packets int `json:"packets"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(ip(t, ns, "-json", "-s", "link", "show", "dev", dev)), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -s link show %s: %v", dev, err)
	}
	return links[0].Stats.RX.Packets
}

// listedPeer is an element of meshctl peer list -o json.
type listedPeer struct {
	Name      string `json:"name"`
	IP        string `json:"ip"`
	PublicKey string `json:"public_key"`
}

func wantStatus(status string) func(*digtest.Result) error {
	return func(r *digtest.Result) error {
		if r.Status != status {
			return fmt.Errorf("status %s, want %s", r.Status, status)
		}
		return nil
	}
}

func wantAAAA(ips ...string) func(*digtest.Result) error {
	return func(r *digtest.Result) error {
		if got := aaaaOf(r); r.Status != "NOERROR" || !sameSet(got, ips) {
			return fmt.Errorf("%s %v, want NOERROR %v", r.Status, got, ips)
		}
		return nil
	}
}

func wantTXT(text string) func(*digtest.Result) error {
	return func(r *digtest.Result) error {
		if got := txtOf(r); r.Status != "NOERROR" || got != text {
			return fmt.Errorf("%s %q, want NOERROR %q", r.Status, got, text)
		}
		return nil
	}
}

// startWireGuard runs a wireguard-go device named wg0 in ns, configured with
// uapi, and returns once it is up.
func startWireGuard(t *testing.T, ns, role, uapi string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), role+".uapi")
	if err := os.WriteFile(path, []byte(uapi), 0o600); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemonEnv(t, ns, []string{helperEnv + "=" + path, helperTUNEnv + "=wg0"}, self)
	if err := d.waitOutput(helperReady, startupTimeout); err != nil {
		t.Fatalf("WireGuard %s: %v", role, err)
	}
}
