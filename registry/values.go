package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"
)

// The registry's values. Each has a JSON form (SPEC §3); unknown JSON fields
// are ignored so writers and servers can be upgraded independently.
// UpdatedAt is stamped by writers (meshctl does) so servers can measure how
// long a write took to reach DNS; it is optional.

// OrgValue is the value of orgs/<org>.
type OrgValue struct {
	Name      string       `json:"-"`
	Network   netip.Prefix `json:"network"`
	UpdatedAt time.Time    `json:"updated_at,omitzero"`
}

// AppValue is the value of apps/<org>/<app>.
type AppValue struct {
	Org       string     `json:"-"`
	Name      string     `json:"-"`
	Flycast   netip.Addr `json:"flycast,omitzero"`
	UpdatedAt time.Time  `json:"updated_at,omitzero"`
}

// Machine is the value of machines/<org>/<app>/<id>.
type Machine struct {
	Org              string            `json:"-"`
	App              string            `json:"-"`
	ID               string            `json:"-"`
	Region           string            `json:"region"`
	IP               netip.Addr        `json:"ip"`
	State            string            `json:"state"`
	ProcessGroup     string            `json:"process_group,omitempty"`
	Metadata         map[string]string `json:"metadata,omitempty"`
	SkipRegistration bool              `json:"skip_registration,omitempty"`
	UpdatedAt        time.Time         `json:"updated_at,omitzero"`
	// Checks maps a health check's name to its status (SPEC §5):
	// CheckPassing, CheckWarning or CheckCritical.
	Checks map[string]string `json:"checks,omitempty"`
	// Services are the services the machine offers, for SRV (SPEC §5).
	Services []Service `json:"services,omitempty"`
}

// Service is one service a machine offers: _<name>._<protocol>.<app>.internal SRV.
type Service struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
	Port     int    `json:"port"`
}

// Check statuses, from best to worst.
const (
	CheckPassing  = "passing"
	CheckWarning  = "warning"
	CheckCritical = "critical"
)

// Healthy reports whether the machine is started with no critical check
// (no checks at all counts as healthy).
func (m *Machine) Healthy() bool {
	if !m.Started() {
		return false
	}
	for _, st := range m.Checks {
		if st == CheckCritical {
			return false
		}
	}
	return true
}

// WorstCheck is the worst status among the machine's checks, or "none"
// when it has none (checks.<app>.internal).
func (m *Machine) WorstCheck() string {
	worst := ""
	for _, st := range m.Checks {
		switch {
		case st == CheckCritical:
			return CheckCritical
		case st == CheckWarning:
			worst = CheckWarning
		case worst == "":
			worst = st
		}
	}
	if worst == "" {
		return "none"
	}
	return worst
}

// Offers reports whether the machine declares service name over protocol,
// and on which port.
func (m *Machine) Offers(name, protocol string) (port int, ok bool) {
	for _, s := range m.Services {
		if s.Name == name && s.Protocol == protocol {
			return s.Port, true
		}
	}
	return 0, false
}

// Started reports whether the machine is in state started: only started
// machines appear in AAAA answers.
func (m *Machine) Started() bool { return m.State == StateStarted }

// Deployed reports whether the machine counts as existing at all: any state
// but destroyed, and not hidden with skip_registration.
func (m *Machine) Deployed() bool { return m.State != StateDestroyed && !m.SkipRegistration }

// Peer is the value of peers/<org>/<peer>: a WireGuard peer.
type Peer struct {
	Org       string     `json:"-"`
	Name      string     `json:"-"`
	IP        netip.Addr `json:"ip"`
	Region    string     `json:"region,omitempty"`
	PublicKey string     `json:"public_key,omitempty"`
	UpdatedAt time.Time  `json:"updated_at,omitzero"`
}

// Gateway is the value of gateways/<region>: the WireGuard gateway of a region.
type Gateway struct {
	Region    string    `json:"-"`
	Endpoint  string    `json:"endpoint"`
	PublicKey string    `json:"public_key"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Region is the value of regions/<code>: adds a region or overrides the
// built-in coordinates of one.
type Region struct {
	Code      string    `json:"-"`
	Name      string    `json:"name,omitempty"`
	Lat       float64   `json:"lat"`
	Lon       float64   `json:"lon"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// DefaultProcessGroup is the process group of a machine that names none.
const DefaultProcessGroup = "app"

// Decode parses and validates the value stored under k. It checks every rule
// that the value alone can break; rules that need other keys (an address
// inside its org's network, networks not shared) are checked when the
// snapshot is built. The result is one of *OrgValue, *AppValue, *Machine,
// *Peer, *Gateway, *Region.
func Decode(k Key, data []byte) (any, error) { return decode(k, data, true) }

// decode is Decode; fast lets it try the shortcut decoders of fastjson.go
// before encoding/json (tests compare the two).
func decode(k Key, data []byte, fast bool) (any, error) {
	var v any
	var err error
	switch k.Kind {
	case KindOrg:
		o := &OrgValue{Name: k.Name}
		if err = unmarshal(data, o); err == nil {
			err = o.Validate()
		}
		v = o
	case KindApp:
		a := &AppValue{Org: k.Org, Name: k.App}
		if !fast || !decodeAppFast(data, a) {
			*a = AppValue{Org: k.Org, Name: k.App} // whatever the shortcut set
			err = unmarshal(data, a)
		}
		if err == nil {
			err = a.Validate()
		}
		v = a
	case KindMachine:
		m := &Machine{Org: k.Org, App: k.App, ID: k.Name}
		if !fast || !decodeMachineFast(data, m) {
			*m = Machine{Org: k.Org, App: k.App, ID: k.Name} // whatever the shortcut set
			err = unmarshal(data, m)
		}
		if err == nil {
			if m.ProcessGroup == "" {
				m.ProcessGroup = DefaultProcessGroup
			}
			err = m.Validate()
		}
		v = m
	case KindPeer:
		p := &Peer{Org: k.Org, Name: k.Name}
		if err = unmarshal(data, p); err == nil {
			err = p.Validate()
		}
		v = p
	case KindGateway:
		g := &Gateway{Region: k.Name}
		if err = unmarshal(data, g); err == nil {
			err = g.Validate()
		}
		v = g
	case KindRegion:
		r := &Region{Code: k.Name}
		if err = unmarshal(data, r); err == nil {
			err = r.Validate()
		}
		v = r
	default:
		return nil, fmt.Errorf("unknown kind %d", k.Kind)
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

func unmarshal(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("value is not valid JSON for this key: %w", err)
	}
	// json.Unmarshal accepts null for a struct and leaves it untouched,
	// which would turn "null" into an app or a region at 0,0.
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return fmt.Errorf("value must be a JSON object, not %s", t)
	}
	return nil
}

// Validate checks an org value on its own.
func (o *OrgValue) Validate() error {
	return firstErr(CheckLabel("org", o.Name), CheckNetwork(o.Network))
}

// Validate checks an app value on its own.
func (a *AppValue) Validate() error {
	if err := firstErr(CheckLabel("org", a.Org), CheckLabel("app", a.Name)); err != nil {
		return err
	}
	if a.Flycast.IsValid() {
		return CheckAddrIn("flycast", a.Flycast, MeshRange)
	}
	return nil
}

// Validate checks a machine value on its own.
func (m *Machine) Validate() error {
	err := firstErr(CheckLabel("org", m.Org), CheckLabel("app", m.App), CheckMachineID(m.ID),
		CheckRegionCode(m.Region), CheckState(m.State), CheckLabel("process_group", m.ProcessGroup),
		CheckAddrIn("ip", m.IP, MeshRange))
	if err != nil {
		return err
	}
	// The error of the first bad key in sorted order, so the reason
	// logged for a value is always the same (map order is random).
	var badKey string
	for k, v := range m.Metadata {
		if e := firstErr(CheckLabel("metadata key", k), CheckLabel("metadata value of "+k, v)); e != nil && (err == nil || k < badKey) {
			badKey, err = k, e
		}
	}
	if err != nil {
		return err
	}
	badKey = ""
	for k, v := range m.Checks {
		if e := firstErr(CheckCheckName(k), CheckCheckStatus(k, v)); e != nil && (err == nil || k < badKey) {
			badKey, err = k, e
		}
	}
	if err != nil {
		return err
	}
	return CheckServices(m.Services)
}

// Validate checks a peer value on its own.
func (p *Peer) Validate() error {
	err := firstErr(CheckLabel("org", p.Org), CheckLabel("peer", p.Name), CheckAddrIn("ip", p.IP, MeshRange))
	if err == nil && p.Region != "" {
		err = CheckRegionCode(p.Region)
	}
	if err == nil && p.PublicKey != "" {
		err = CheckWireGuardKey("public_key", p.PublicKey)
	}
	return err
}

// Validate checks a gateway value.
func (g *Gateway) Validate() error {
	if err := CheckRegionCode(g.Region); err != nil {
		return err
	}
	if _, err := netip.ParseAddrPort(g.Endpoint); err != nil {
		return fmt.Errorf("endpoint %q: must be address:port (%v)", g.Endpoint, err)
	}
	if err := CheckWireGuardKey("public_key", g.PublicKey); err != nil {
		return err
	}
	return nil
}

// Validate checks a region value.
func (r *Region) Validate() error {
	if err := CheckRegionCode(r.Code); err != nil {
		return err
	}
	if r.Lat < -90 || r.Lat > 90 {
		return fmt.Errorf("lat %v: must be between -90 and 90", r.Lat)
	}
	if r.Lon < -180 || r.Lon > 180 {
		return fmt.Errorf("lon %v: must be between -180 and 180", r.Lon)
	}
	return nil
}
