package registry

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"strings"
)

// MeshRange is the range every organisation's network lies in.
var MeshRange = netip.MustParsePrefix("fdaa::/16")

// reservedRegions are words of the .internal grammar; a region with one of
// these codes would make names such as <region>.<app>.internal ambiguous.
var reservedRegions = map[string]bool{
	"vms": true, "all": true, "top": true, "nearest": true, "of": true,
	"process": true, "vm": true, "global": true, "regions": true,
}

// States a machine can be in (SPEC §3).
const (
	StateCreated    = "created"
	StateStarting   = "starting"
	StateStarted    = "started"
	StateStopping   = "stopping"
	StateStopped    = "stopped"
	StateSuspending = "suspending"
	StateSuspended  = "suspended"
	StateReplacing  = "replacing"
	StateDestroying = "destroying"
	StateDestroyed  = "destroyed"
	StateFailed     = "failed"
)

// States lists every valid machine state.
var States = []string{
	StateCreated, StateStarting, StateStarted, StateStopping, StateStopped,
	StateSuspending, StateSuspended, StateReplacing, StateDestroying,
	StateDestroyed, StateFailed,
}

// CheckLabel checks a DNS label used as an org, app, peer, process group or
// metadata name: lowercase [a-z0-9-], 1–63 bytes, no leading or trailing '-'.
func CheckLabel(field, s string) error {
	if len(s) == 0 || len(s) > 63 {
		return fmt.Errorf("%s %q: must be 1 to 63 bytes long", field, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%s %q: only lowercase letters, digits and '-' are allowed", field, s)
		}
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return fmt.Errorf("%s %q: must not start or end with '-'", field, s)
	}
	return nil
}

// CheckMachineID checks a machine id: lowercase hex, 1–63 bytes.
func CheckMachineID(s string) error {
	if len(s) == 0 || len(s) > 63 {
		return fmt.Errorf("machine id %q: must be 1 to 63 bytes long", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("machine id %q: must be lowercase hex", s)
		}
	}
	return nil
}

// CheckRegionCode checks a region code: three lowercase letters, not a word
// of the DNS grammar.
func CheckRegionCode(s string) error {
	if len(s) != 3 {
		return fmt.Errorf("region %q: must be three lowercase letters", s)
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return fmt.Errorf("region %q: must be three lowercase letters", s)
		}
	}
	if reservedRegions[s] {
		return fmt.Errorf("region %q: reserved word of the .internal grammar", s)
	}
	return nil
}

// CheckState checks a machine state.
func CheckState(s string) error {
	for _, st := range States {
		if s == st {
			return nil
		}
	}
	return fmt.Errorf("state %q: must be one of %v", s, States)
}

// CheckNetwork checks an org network: an IPv6 /48 inside fdaa::/16, given in
// its canonical form (no host bits set).
func CheckNetwork(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("network: missing or not an IPv6 prefix")
	}
	if !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() != 48 {
		return fmt.Errorf("network %q: must be an IPv6 /48", p)
	}
	if p.Masked() != p {
		return fmt.Errorf("network %q: host bits set (did you mean %s?)", p, p.Masked())
	}
	if !MeshRange.Contains(p.Addr()) {
		return fmt.Errorf("network %q: must lie inside %s", p, MeshRange)
	}
	return nil
}

// CheckAddrIn checks that a 6PN address lies inside its org's network.
func CheckAddrIn(field string, a netip.Addr, network netip.Prefix) error {
	if !a.IsValid() || !a.Is6() || a.Is4In6() || a.Zone() != "" {
		return fmt.Errorf("%s %q: must be an IPv6 address", field, a)
	}
	if network.IsValid() && !network.Contains(a) {
		return fmt.Errorf("%s %s: outside the org's network %s", field, a, network)
	}
	return nil
}

// PeerSubnetID is the subnet of every org's /48 reserved for WireGuard
// peers: <network>:fffe::/64 (docs/addresses.md).
const PeerSubnetID = 0xfffe

// PeerSubnet is the /64 of an org's network that holds its WireGuard peers.
func PeerSubnet(network netip.Prefix) netip.Prefix {
	b := network.Masked().Addr().As16()
	b[6], b[7] = PeerSubnetID>>8, PeerSubnetID&0xff
	return netip.PrefixFrom(netip.AddrFrom16(b), 64)
}

// CheckMachineAddr checks a machine's address for a writer: inside its
// org's network and outside the org's peer subnet, which is reserved for
// WireGuard peers. (Readers accept a machine there: the reservation is the
// writers' to keep, and a raw write must not make a machine vanish.)
func CheckMachineAddr(a netip.Addr, network netip.Prefix) error {
	if err := CheckAddrIn("ip", a, network); err != nil {
		return err
	}
	if network.IsValid() {
		if ps := PeerSubnet(network); ps.Contains(a) {
			return fmt.Errorf("ip %s: inside the org's peer subnet %s, which is reserved for WireGuard peers", a, ps)
		}
	}
	return nil
}

// CheckWireGuardKey checks a WireGuard key: 32 bytes in standard base64.
func CheckWireGuardKey(field, s string) error {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		return fmt.Errorf("%s %q: must be a WireGuard key (32 bytes, base64)", field, s)
	}
	return nil
}

// CheckCheckName checks a health check's name: [a-z0-9_-], 1–63 bytes.
func CheckCheckName(s string) error {
	if len(s) == 0 || len(s) > 63 {
		return fmt.Errorf("check name %q: must be 1 to 63 bytes long", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("check name %q: only lowercase letters, digits, '-' and '_' are allowed", s)
		}
	}
	return nil
}

// CheckStatuses lists the valid statuses of a health check.
var CheckStatuses = []string{CheckPassing, CheckWarning, CheckCritical}

// CheckCheckStatus checks the status of health check name.
func CheckCheckStatus(name, s string) error {
	if s == CheckPassing || s == CheckWarning || s == CheckCritical {
		return nil
	}
	return fmt.Errorf("check %s: status %q must be one of %v", name, s, CheckStatuses)
}

// CheckServiceName checks a service name as RFC 6335 §5.1 has it:
// [a-z0-9-], 1–15 bytes, at least one letter, no leading or trailing '-'
// and no "--".
func CheckServiceName(s string) error {
	if len(s) == 0 || len(s) > 15 {
		return fmt.Errorf("service name %q: must be 1 to 15 bytes long", s)
	}
	letter := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
			letter = true
		case c >= '0' && c <= '9', c == '-':
		default:
			return fmt.Errorf("service name %q: only lowercase letters, digits and '-' are allowed", s)
		}
	}
	if !letter {
		return fmt.Errorf("service name %q: must contain a letter", s)
	}
	if s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return fmt.Errorf("service name %q: must not start or end with '-' or hold \"--\"", s)
	}
	return nil
}

// CheckServices checks a machine's services: valid names, tcp or udp,
// ports 1–65535, each name/protocol pair at most once.
func CheckServices(svcs []Service) error {
	for i, sv := range svcs {
		if err := CheckServiceName(sv.Name); err != nil {
			return err
		}
		if sv.Protocol != "tcp" && sv.Protocol != "udp" {
			return fmt.Errorf("service %s: protocol %q must be tcp or udp", sv.Name, sv.Protocol)
		}
		if sv.Port < 1 || sv.Port > 65535 {
			return fmt.Errorf("service %s/%s: port %d must be between 1 and 65535", sv.Name, sv.Protocol, sv.Port)
		}
		for _, o := range svcs[:i] {
			if o.Name == sv.Name && o.Protocol == sv.Protocol {
				return fmt.Errorf("service %s/%s: declared twice", sv.Name, sv.Protocol)
			}
		}
	}
	return nil
}
