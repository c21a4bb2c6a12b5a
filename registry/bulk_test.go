package registry

import (
	"testing"
)

// TestItemKeys: every value type is an Item whose Key is the key it was
// decoded from, so PutAll writes a decoded value back where it came from.
func TestItemKeys(t *testing.T) {
	wg := "8Pz6pZ0oW3m1sQ9bTf2q0a6b8xKcYdEgHiJkLmNoPq0="
	for _, c := range []struct{ key, value string }{
		{"orgs/acme", `{"network":"fdaa:0:18::/48"}`},
		{"apps/acme/web", `{"flycast":"fdaa:0:18:0:1::5"}`},
		{"machines/acme/web/3d8d9e0b2ee489", `{"region":"ams","ip":"fdaa:0:18:a7b:1::2","state":"started"}`},
		{"peers/acme/alice", `{"ip":"fdaa:0:18:fffe::2","region":"ams"}`},
		{"gateways/ams", `{"endpoint":"203.0.113.7:51820","public_key":"` + wg + `"}`},
		{"regions/xyz", `{"name":"Somewhere","lat":1.5,"lon":2.5}`},
	} {
		k, err := ParseKey(DefaultPrefix, DefaultPrefix+c.key)
		if err != nil {
			t.Fatal(err)
		}
		it, err := DecodeItem(k, []byte(c.value))
		if err != nil {
			t.Fatalf("%s: %v", c.key, err)
		}
		if it.Key() != k {
			t.Errorf("%s: decoded as %T with Key %+v, want %+v", c.key, it, it.Key(), k)
		}
	}
	if _, err := DecodeItem(OrgKey("acme"), []byte(`{"network":"10.0.0.0/8"}`)); err == nil {
		t.Error("DecodeItem of an invalid org: no error")
	}
}
