package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/meshdns/meshdns/registry"
)

// Registry values given as flags are parsed by the verb rather than by the
// flag package, so that a malformed one is reported like any other rejected
// value (one line naming field, value and rule) instead of a usage dump.

// parseAddr parses an IPv6 address flag; empty means none.
func parseAddr(field, s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s %q: not an IPv6 address (want e.g. fdaa:0:18:a7b:1::2)", field, s)
	}
	return a, nil
}

// parseNetwork parses an org network flag.
func parseNetwork(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("network %q: not an IPv6 prefix (want e.g. fdaa:0:18::/48)", s)
	}
	return p, nil
}

// parseMetadata parses repeated --metadata key=value flags. The pairs are
// checked as labels by the registry; this only splits them.
func parseMetadata(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	md := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("metadata %q: want key=value", p)
		}
		if _, dup := md[k]; dup {
			return nil, fmt.Errorf("metadata key %q: given twice", k)
		}
		md[k] = v
	}
	return md, nil
}

// checkKey checks the names in a key that a command is about to read,
// change or delete. Writes are checked by the registry's Writer, but its
// Delete and SetMachineState take names as given; checking here turns a
// typo like an uppercase name into a clear error instead of "not found".
func checkKey(k registry.Key) error {
	if _, err := registry.ParseKey("", k.Path()); err != nil {
		return err
	}
	return nil
}
