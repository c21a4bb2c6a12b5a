package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fuzzKeys are the keys FuzzDecode decodes values for, by kind number;
// 0 and 7 are kinds that do not exist.
var fuzzKeys = [...]Key{
	{},
	OrgKey("acme"),
	AppKey("acme", "web"),
	MachineKey("acme", "web", "3d8d9e0b2ee489"),
	PeerKey("acme", "alice"),
	GatewayKey("ams"),
	RegionKey("ams"),
	{Kind: 7, Name: "x"},
}

// FuzzDecode: Decode never panics, returns a value or an error (never both),
// and a value that decodes encodes to JSON that decodes to an equal value,
// and encodes the same again. Seeds are in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add(uint8(KindMachine), []byte(`{"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started","metadata":{"a":"b"}}`))
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		k := fuzzKeys[int(kind)%len(fuzzKeys)]
		v, err := Decode(k, data)
		if err != nil {
			if v != nil {
				t.Fatalf("Decode returned %#v and %v", v, err)
			}
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if k.Kind < KindOrg || k.Kind > KindRegion {
			t.Fatalf("Decode accepted kind %d", k.Kind)
		}
		enc, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("encode %#v: %v", v, err)
		}
		v2, err := Decode(k, enc)
		if err != nil {
			t.Fatalf("%q decoded to %#v, which encodes as %s, which does not decode: %v", data, v, enc, err)
		}
		if !sameValue(v, v2) {
			t.Fatalf("%q decoded to\n%#v\nwhich encodes as %s and decodes to\n%#v", data, v, enc, v2)
		}
		if enc2, _ := json.Marshal(v2); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// sameValue compares decoded values the way a reader sees them: times by
// instant (the location pointer of a parsed offset differs between parses)
// and an empty metadata map like a missing one.
func sameValue(a, b any) bool {
	norm := func(v any) any {
		switch v := v.(type) {
		case *OrgValue:
			c := *v
			c.UpdatedAt = utc(c.UpdatedAt)
			return c
		case *AppValue:
			c := *v
			c.UpdatedAt = utc(c.UpdatedAt)
			return c
		case *Machine:
			c := *v
			c.UpdatedAt = utc(c.UpdatedAt)
			if len(c.Metadata) == 0 {
				c.Metadata = nil
			}
			return c
		case *Peer:
			c := *v
			c.UpdatedAt = utc(c.UpdatedAt)
			return c
		case *Gateway:
			c := *v
			c.UpdatedAt = utc(c.UpdatedAt)
			return c
		case *Region:
			c := *v
			c.UpdatedAt = utc(c.UpdatedAt)
			return c
		}
		return v
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

func utc(t time.Time) time.Time { return t.UTC() }

// FuzzParseKey: ParseKey never panics; a key that parses has names that
// pass their checks and prints back as exactly the key it came from.
// Seeds are in testdata/fuzz/FuzzParseKey.
func FuzzParseKey(f *testing.F) {
	f.Add(DefaultPrefix + "machines/acme/web/3d8d9e0b2ee489")
	f.Fuzz(func(t *testing.T, key string) {
		k, err := ParseKey(DefaultPrefix, key)
		if err != nil {
			if k != (Key{}) {
				t.Fatalf("ParseKey(%q) returned %+v and %v", key, k, err)
			}
			if !strings.Contains(err.Error(), "key ") {
				t.Fatalf("error %q does not name the key", err)
			}
			return
		}
		if got := DefaultPrefix + k.Path(); got != key {
			t.Fatalf("ParseKey(%q) = %+v, which prints as %q", key, k, got)
		}
		again, err := ParseKey(DefaultPrefix, DefaultPrefix+k.Path())
		if err != nil || again != k {
			t.Fatalf("ParseKey of its own path: %+v, %v; want %+v", again, err, k)
		}
		var names error
		switch k.Kind {
		case KindOrg:
			names = CheckLabel("org", k.Name)
		case KindApp:
			names = firstErr(CheckLabel("org", k.Org), CheckLabel("app", k.App), errIf(k.Name != k.App))
		case KindMachine:
			names = firstErr(CheckLabel("org", k.Org), CheckLabel("app", k.App), CheckMachineID(k.Name))
		case KindPeer:
			names = firstErr(CheckLabel("org", k.Org), CheckLabel("peer", k.Name), errIf(k.App != ""))
		case KindGateway, KindRegion:
			names = firstErr(CheckRegionCode(k.Name), errIf(k.Org != "" || k.App != ""))
		default:
			t.Fatalf("ParseKey(%q) gave kind %d", key, k.Kind)
		}
		if names != nil {
			t.Fatalf("ParseKey(%q) = %+v with a bad name: %v", key, k, names)
		}
	})
}

func errIf(b bool) error {
	if b {
		return errFuzz
	}
	return nil
}

var errFuzz = errors.New("inconsistent key fields")

// FuzzDecodeFastMatchesJSON: Decode with the shortcut decoders of
// fastjson.go gives exactly what encoding/json alone gives — the same
// value, or the same error — for any input. Seeds cover the shapes the
// shortcut takes and every way it has to give up.
func FuzzDecodeFastMatchesJSON(f *testing.F) {
	for _, s := range []string{
		`{"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started","metadata":{"a":"b"}}`,
		`{"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started","process_group":"app","skip_registration":false,"updated_at":"2025-03-01T12:00:00Z"}`,
		` { "region" : "iad" , "ip":"fdaa::2", "state":"stopped", "process_group":"worker", "metadata":{}, "skip_registration":true, "updated_at":"2025-03-01T12:00:00.123456789+02:00" } `,
		`{"Region":"ams","ip":"fdaa::2","state":"started"}`,
		`{"region":"ams","region":"iad","ip":"fdaa::2","state":"started"}`,
		`{"region":"a\u006ds","ip":"fdaa::2","state":"started"}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","metadata":{"a":"b","a":"c"}}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","metadata":null}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","skip_registration":null}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","updated_at":null}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","updated_at":"2025-13-01T12:00:00Z"}`,
		`{"region":"ams","ip":"","state":"started"}`,
		`{"region":"ams","ip":"fdaa::2%eth0","state":"started"}`,
		`{"region":"ams","ip":"10.0.0.1","state":"started"}`,
		`{"region":5,"ip":"fdaa::2","state":"started"}`,
		`{"region":"ams","ip":"fdaa::2","state":"started",}`,
		`{"region":"ams","ip":"fdaa::2","state":"started"} x`,
		`{"region":"ams","ip":"fdaa::2","state":"started","extra":[1,2,{"x":null}]}`,
		`{"region":"é","ip":"fdaa::2","state":"started"}`,
		"{\"region\":\"ams\xff\",\"ip\":\"fdaa::2\",\"state\":\"started\"}",
		`{}`, ` {} `, `null`, `[]`, `"x"`, `{`, ``,
		`{"region":"ams","ip":"fdaa::2","state":"started","checks":{"http":"passing","pg":"critical"}}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","checks":{"http":"passing","http":"critical"}}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","checks":{"http":"ok"}}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","checks":{"Bad Name":"passing"}}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","checks":{}}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","checks":null}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","checks":{"a":"passing"},"checks":{"b":"passing"}}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":[{"name":"http","protocol":"tcp","port":8080}]}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":[ {"port":53 ,"protocol":"udp","name":"dns"} , {"name":"http","protocol":"tcp","port":8080} ]}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":[]}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":null}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":[{}]}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":[{"name":"http","protocol":"tcp"}]}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":[{"name":"http","protocol":"tcp","port":08080}]}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":[{"name":"http","protocol":"tcp","port":8080.0}]}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":[{"name":"http","protocol":"tcp","port":1e3}]}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":[{"name":"http","protocol":"tcp","port":-1}]}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":[{"name":"http","protocol":"tcp","port":123456}]}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":[{"name":"http","protocol":"tcp","port":0}]}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":[{"name":"http","protocol":"tcp","port":70000}]}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":[{"name":"http","protocol":"sctp","port":80}]}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":[{"name":"http","protocol":"tcp","port":80},{"name":"http","protocol":"tcp","port":81}]}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":[{"Name":"http","protocol":"tcp","port":80}]}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":[{"name":"http","name":"web","protocol":"tcp","port":80}]}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":[{"name":"http","protocol":"tcp","port":80,"x":1}]}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":[{"name":"http","protocol":"tcp","port":80},]}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":[{"name":"http","protocol":"tcp","port":80}`,
		`{"region":"ams","ip":"fdaa::2","state":"started","services":{"name":"http"}}`,
		`{"flycast":"fdaa:0:18::5"}`, `{"flycast":""}`, `{"flycast":"fdaa:0:18::5","updated_at":"2025-03-01T12:00:00Z"}`,
		`{"flycast":"fdaa:0:18::5","flycast":"fdaa:0:18::6"}`, `{"Flycast":"fdaa:0:18::5"}`,
	} {
		f.Add(uint8(KindMachine), []byte(s))
		f.Add(uint8(KindApp), []byte(s))
	}
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		k := fuzzKeys[int(kind)%len(fuzzKeys)]
		fast, ferr := decode(k, data, true)
		slow, serr := decode(k, data, false)
		if (ferr == nil) != (serr == nil) || ferr != nil && ferr.Error() != serr.Error() {
			t.Fatalf("%q: shortcut gives %v, encoding/json %v", data, ferr, serr)
		}
		if ferr != nil {
			return
		}
		fj, _ := json.Marshal(fast)
		sj, _ := json.Marshal(slow)
		if !bytes.Equal(fj, sj) || !reflect.DeepEqual(withoutTime(fast), withoutTime(slow)) {
			t.Fatalf("%q: shortcut gives\n%#v\nencoding/json\n%#v", data, fast, slow)
		}
	})
}

// withoutTime is a decoded value with its timestamp cleared (two parses of
// one offset make two *time.Location; json.Marshal compares the times).
func withoutTime(v any) any {
	switch v := v.(type) {
	case *Machine:
		c := *v
		c.UpdatedAt = time.Time{}
		return c
	case *AppValue:
		c := *v
		c.UpdatedAt = time.Time{}
		return c
	}
	return v
}
