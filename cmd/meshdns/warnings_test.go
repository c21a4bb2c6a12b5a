package main

import (
	"strings"
	"testing"
)

func TestUnsafeSettingsAreWarnedAbout(t *testing.T) {
	tests := []struct {
		args []string
		want []string // substrings, one per expected warning
	}{
		{nil, nil},
		{[]string{"--demo"}, nil}, // --demo implies the default org on loopback listeners
		{[]string{"--default-org", "acme"}, nil},
		{[]string{"--default-org", "acme", "--listen", "[::]:53"}, []string{"--default-org"}},
		{[]string{"--default-org", "acme", "--listen", "127.0.0.1:53", "--listen", "10.1.2.3:53"}, []string{"--default-org"}},
		{[]string{"--default-org", "acme", "--listen", "[fdaa::3]:53"}, []string{"--default-org"}},
		{[]string{"--listen", "[::]:53"}, nil},
		// The peer URL follows the client URL's host unless given.
		{[]string{"--embedded-etcd-url", "http://0.0.0.0:2379"}, []string{"--embedded-etcd-url", "--embedded-etcd-peer-url"}},
		{[]string{"--embedded-etcd-url", "http://localhost:2379"}, nil},
		{[]string{"--embedded-etcd-peer-url", "http://[fdaa::5]:2380"}, []string{"--embedded-etcd-peer-url"}},
		// An external cluster: the embedded etcd's URLs do not matter.
		{[]string{"--etcd-endpoints", "http://10.0.0.1:2379", "--embedded-etcd-url", "http://0.0.0.0:2379"}, nil},
	}
	for _, tc := range tests {
		o, err := parseOptions(tc.args)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		got := unsafeSettings(o)
		if len(got) != len(tc.want) {
			t.Errorf("%v: %d warnings %v, want %d", tc.args, len(got), got, len(tc.want))
			continue
		}
		for i, w := range tc.want {
			if !strings.Contains(got[i].msg, w) {
				t.Errorf("%v: warning %q, want one about %s", tc.args, got[i].msg, w)
			}
		}
	}
}
