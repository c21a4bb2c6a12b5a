package registry

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"time"
)

// The local copy's lines, encoded by hand into a reused buffer: the same
// JSON that encoding/json writes for these values (field names, order and
// omissions as in values.go), without its per-value allocations. Anything
// outside the plain shape a served value has — a string that would need
// escaping, a time that encoding/json could not write — goes through
// encoding/json instead, so every line decodes to exactly the value it was
// written from (TestCopyLinesMatchEncodingJSON).

// appendJSONLine appends v as encoding/json writes it, and a newline.
func appendJSONLine(b []byte, v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(append(b, data...), '\n'), nil
}

// plain reports whether s can be written between quotes as it is: printable
// ASCII other than '"' and '\\', and none of '<', '>', '&' (which
// encoding/json escapes).
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

func appendString(b []byte, s string) []byte {
	if plain(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	data, _ := json.Marshal(s) // a string always encodes
	return append(b, data...)
}

// appendTime appends ,"updated_at":"..." for a set time, as time.Time's
// MarshalJSON writes it; ok is false for a year it would refuse.
func appendTime(b []byte, t time.Time) ([]byte, bool) {
	if t.IsZero() {
		return b, true
	}
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	b = append(b, `,"updated_at":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}

// appendPath appends "<dir>/<a>/<b>/<c>" (the empty parts left out) as a JSON string.
func appendPath(b []byte, dir string, parts ...string) []byte {
	b = append(b, '"')
	b = append(b, dir...)
	for _, p := range parts {
		b = append(b, '/')
		b = append(b, p...)
	}
	return append(b, '"')
}

func appendOrgLine(b []byte, o *Org) []byte {
	b = append(b, '[')
	b = appendPath(b, "orgs", o.Name)
	b = append(b, `,{"network":"`...)
	b = o.Network.AppendTo(b)
	b = append(b, `"},{"rev":`...)
	b = strconv.AppendInt(b, o.Claim.Rev, 10)
	b = append(b, `,"create_revision":`...)
	b = strconv.AppendInt(b, o.Claim.CreateRevision, 10)
	b = append(b, `,"mod_revision":`...)
	b = strconv.AppendInt(b, o.Claim.ModRevision, 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, o.Claim.Version, 10)
	return append(b, "}]\n"...)
}

func appendAppLine(b []byte, a *App) []byte {
	b = append(b, '[')
	b = appendPath(b, "apps", a.Org, a.Name)
	if !a.Flycast.IsValid() {
		return append(b, ",{}]\n"...)
	}
	b = append(b, `,{"flycast":"`...)
	b = a.Flycast.AppendTo(b)
	return append(b, "\"}]\n"...)
}

func appendMachineLine(b []byte, m *Machine) ([]byte, error) {
	start := len(b)
	b = append(b, '[')
	b = appendPath(b, "machines", m.Org, m.App, m.ID)
	b = append(b, `,{"region":`...)
	b = appendString(b, m.Region)
	b = append(b, `,"ip":"`...)
	b = m.IP.AppendTo(b)
	b = append(b, `","state":`...)
	b = appendString(b, m.State)
	if m.ProcessGroup != "" {
		b = append(b, `,"process_group":`...)
		b = appendString(b, m.ProcessGroup)
	}
	if len(m.Metadata) > 0 {
		b = appendObject(b, `,"metadata":`, m.Metadata)
	}
	if m.SkipRegistration {
		b = append(b, `,"skip_registration":true`...)
	}
	b, ok := appendTime(b, m.UpdatedAt)
	if len(m.Checks) > 0 {
		b = appendObject(b, `,"checks":`, m.Checks)
	}
	if len(m.Services) > 0 {
		b = append(b, `,"services":[`...)
		for i, sv := range m.Services {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendString(b, sv.Name)
			b = append(b, `,"protocol":`...)
			b = appendString(b, sv.Protocol)
			b = append(b, `,"port":`...)
			b = strconv.AppendInt(b, int64(sv.Port), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if !ok || !m.IP.IsValid() {
		return appendJSONLine(b[:start], []any{MachineKey(m.Org, m.App, m.ID).Path(), m})
	}
	return append(b, "}]\n"...), nil
}

func appendPeerLine(b []byte, org, name string, p *Peer) ([]byte, error) {
	start := len(b)
	b = append(b, '[')
	b = appendPath(b, "peers", org, name)
	b = append(b, `,{"ip":"`...)
	b = p.IP.AppendTo(b)
	b = append(b, '"')
	if p.Region != "" {
		b = append(b, `,"region":`...)
		b = appendString(b, p.Region)
	}
	if p.PublicKey != "" {
		b = append(b, `,"public_key":`...)
		b = appendString(b, p.PublicKey)
	}
	b, ok := appendTime(b, p.UpdatedAt)
	if !ok || !p.IP.IsValid() {
		return appendJSONLine(b[:start], []any{PeerKey(org, name).Path(), p})
	}
	return append(b, "}]\n"...), nil
}

// appendObject appends field and m as a JSON object of strings, keys sorted.
func appendObject[V ~string](b []byte, field string, m map[string]V) []byte {
	b = append(b, field...)
	b = append(b, '{')
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, string(m[k]))
	}
	return append(b, '}')
}
