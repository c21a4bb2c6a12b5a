package registry

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// oldCopyLine is how WriteCopy wrote an entry with encoding/json ("error"
// when it could not).
func oldCopyLine(t *testing.T, k Key, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		return []byte("error")
	}
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode([]any{k.Path(), json.RawMessage(data)}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// orgCopyLine is an org's entry as encoding/json writes it: path, value
// and the claim.
func orgCopyLine(t *testing.T, o *Org) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode([]any{OrgKey(o.Name).Path(), OrgValue{Network: o.Network}, o.Claim}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// lineOrError is what an append function gave, "error" for an error.
func lineOrError(b []byte, err error) []byte {
	if err != nil {
		return []byte("error")
	}
	return b
}

// TestCopyLinesMatchEncodingJSON: the hand-encoded local copy lines are
// byte for byte what encoding/json wrote, for random values including
// strings that need escaping and times with offsets, nanoseconds and out
// of range years.
func TestCopyLinesMatchEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	when := func() time.Time {
		switch rng.IntN(5) {
		case 0:
			return time.Time{}
		case 1:
			return time.Date(2025, 3, 1, 12, 0, 0, rng.IntN(1e9), time.UTC)
		case 2:
			return time.Date(2025, 3, 1, 12, 0, 0, 0, time.FixedZone("", 3600*rng.IntN(12)))
		case 3:
			return time.Date(10000+rng.IntN(5), 1, 1, 0, 0, 0, 0, time.UTC) // MarshalJSON refuses these
		}
		return time.Unix(rng.Int64N(1e10), 0)
	}
	str := func() string { return pick("ams", "started", "app", "a\"b", "<x>", "é", "tab\there", "") }
	for i := range 5000 {
		ip := netip.AddrFrom16([16]byte{0xfd, 0xaa, 0, 0x18, byte(i), byte(rng.IntN(256)), 15: 2})
		m := &Machine{Org: "acme", App: "web", ID: strconv.FormatInt(int64(i), 16), Region: str(), IP: ip,
			State: str(), ProcessGroup: str(), SkipRegistration: rng.IntN(2) == 0, UpdatedAt: when()}
		if rng.IntN(3) == 0 {
			m.Metadata = map[string]string{}
			for range rng.IntN(4) {
				m.Metadata[str()] = str()
			}
		}
		if rng.IntN(3) == 0 {
			m.Checks = map[string]string{}
			for range rng.IntN(4) {
				m.Checks[str()] = pick(CheckPassing, CheckCritical, "a\"b")
			}
		}
		if rng.IntN(3) == 0 {
			m.Services = []Service{}
			for range rng.IntN(4) {
				m.Services = append(m.Services, Service{Name: str(), Protocol: pick("tcp", "udp", "<x>"), Port: rng.IntN(70000)})
			}
		}
		got := lineOrError(appendMachineLine([]byte("prefix"), m))
		if len(got) > 6 {
			got = got[len("prefix"):]
		}
		if want := oldCopyLine(t, MachineKey(m.Org, m.App, m.ID), m); !bytes.Equal(got, want) {
			t.Fatalf("machine %+v:\n got %s\nwant %s", m, got, want)
		}
		p := &Peer{IP: ip, Region: str(), PublicKey: pick("", wgKey, "a/b+c="), UpdatedAt: when()}
		got = lineOrError(appendPeerLine(nil, "acme", "laptop", p))
		if want := oldCopyLine(t, PeerKey("acme", "laptop"), p); !bytes.Equal(got, want) {
			t.Fatalf("peer %+v:\n got %s\nwant %s", p, got, want)
		}
		o := &Org{Name: "acme", Network: netip.PrefixFrom(ip, 48).Masked(),
			Claim: Claim{Rev: rng.Int64(), CreateRevision: rng.Int64(), ModRevision: rng.Int64N(1000), Version: rng.Int64N(3)}}
		if got, want := appendOrgLine(nil, o), orgCopyLine(t, o); !bytes.Equal(got, want) {
			t.Fatalf("org:\n got %s\nwant %s", got, want)
		}
		a := &App{Org: "acme", Name: "web"}
		if rng.IntN(2) == 0 {
			a.Flycast = ip
		}
		if got, want := appendAppLine(nil, a), oldCopyLine(t, AppKey(a.Org, a.Name), AppValue{Flycast: a.Flycast}); !bytes.Equal(got, want) {
			t.Fatalf("app:\n got %s\nwant %s", got, want)
		}
	}
}
