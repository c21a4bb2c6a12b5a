package registry

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// A decoder for the plain shape registry values have in practice — one
// JSON object of known fields, strings without escapes, ASCII — about five
// times faster than encoding/json and without its garbage. It is only a
// shortcut: it accepts a strict subset of JSON, and anything else (an
// unknown or differently cased field, a repeated field, an escape, null,
// a number where a string belongs, trailing bytes...) makes it give up, and
// the value goes through encoding/json as before, which decides whether it
// is valid and with which error. When it succeeds, the value is the one
// encoding/json would have produced (FuzzDecodeFastMatchesJSON).

// scanner reads one JSON value from data.
type scanner struct {
	data []byte
	i    int
}

func (s *scanner) ws() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next skips whitespace and consumes c if it comes next.
func (s *scanner) next(c byte) bool {
	s.ws()
	if s.i < len(s.data) && s.data[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a string without escapes or bytes outside printable ASCII and
// returns its contents (aliasing data); ok is false for anything else.
func (s *scanner) str() (b []byte, ok bool) {
	if !s.next('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.data) {
		c := s.data[s.i]
		switch {
		case c == '"':
			s.i++
			return s.data[start : s.i-1], true
		case c == '\\' || c < 0x20 || c >= 0x7f:
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// rawStr is str, but returns the string with its quotes (what an
// UnmarshalJSON method is given).
func (s *scanner) rawStr() ([]byte, bool) {
	s.ws()
	start := s.i
	if _, ok := s.str(); !ok {
		return nil, false
	}
	return s.data[start:s.i], true
}

// object reads {"key": value, ...} and the end of the data, calling field
// after each key's colon; field reads the value. Fields fail on a repeated
// key (encoding/json would take the last, or merge maps) with once.
func (s *scanner) object(field func(key []byte) bool) bool {
	if !s.next('{') {
		return false
	}
	if s.next('}') {
		return s.end()
	}
	for {
		key, ok := s.str()
		if !ok || !s.next(':') || !field(key) {
			return false
		}
		if s.next('}') {
			return s.end()
		}
		if !s.next(',') {
			return false
		}
	}
}

// end reports whether only whitespace is left.
func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.data)
}

// once marks field bit in seen, failing on a repeat.
func once(seen *uint32, bit uint32) bool {
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

func (s *scanner) addr(a *netip.Addr) bool {
	b, ok := s.str()
	if !ok {
		return false
	}
	if len(b) == 0 {
		*a = netip.Addr{} // as netip.Addr.UnmarshalText
		return true
	}
	v, err := netip.ParseAddr(string(b))
	*a = v
	return err == nil
}

func (s *scanner) time(t *time.Time) bool {
	raw, ok := s.rawStr()
	return ok && t.UnmarshalJSON(raw) == nil
}

// regionNames interns three-letter region codes: a million machines share
// a few dozen region strings instead of holding one each.
var regionNames [26 * 26 * 26]atomic.Pointer[string]

func internRegion(b []byte) string {
	if len(b) != 3 || b[0] < 'a' || b[0] > 'z' || b[1] < 'a' || b[1] > 'z' || b[2] < 'a' || b[2] > 'z' {
		return string(b)
	}
	p := &regionNames[(int(b[0]-'a')*26+int(b[1]-'a'))*26+int(b[2]-'a')]
	if s := p.Load(); s != nil {
		return *s
	}
	s := string(b)
	p.CompareAndSwap(nil, &s)
	return *p.Load()
}

// internState returns the constant for a known state.
func internState(b []byte) string {
	for _, st := range States {
		if string(b) == st {
			return st
		}
	}
	return string(b)
}

func decodeMachineFast(data []byte, m *Machine) bool {
	s := scanner{data: data}
	var seen uint32
	return s.object(func(key []byte) bool {
		switch string(key) {
		case "region":
			b, ok := s.str()
			m.Region = internRegion(b)
			return ok && once(&seen, 1)
		case "ip":
			return s.addr(&m.IP) && once(&seen, 2)
		case "state":
			b, ok := s.str()
			m.State = internState(b)
			return ok && once(&seen, 4)
		case "process_group":
			b, ok := s.str()
			if string(b) == DefaultProcessGroup {
				m.ProcessGroup = DefaultProcessGroup
			} else {
				m.ProcessGroup = string(b)
			}
			return ok && once(&seen, 8)
		case "metadata":
			if !once(&seen, 16) {
				return false
			}
			md := map[string]string{}
			m.Metadata = md
			return s.members(func(k, v []byte) bool {
				if _, dup := md[string(k)]; dup {
					return false
				}
				md[string(k)] = string(v)
				return true
			})
		case "skip_registration":
			if !once(&seen, 32) {
				return false
			}
			s.ws()
			switch {
			case hasPrefixAt(s.data, s.i, "true"):
				m.SkipRegistration = true
				s.i += 4
			case hasPrefixAt(s.data, s.i, "false"):
				m.SkipRegistration = false
				s.i += 5
			default:
				return false
			}
			return true
		case "updated_at":
			return s.time(&m.UpdatedAt) && once(&seen, 64)
		case "checks":
			if !once(&seen, 128) {
				return false
			}
			cs := map[string]string{}
			m.Checks = cs
			return s.members(func(k, v []byte) bool {
				if _, dup := cs[string(k)]; dup {
					return false
				}
				cs[string(k)] = internCheck(v)
				return true
			})
		case "services":
			return once(&seen, 256) && s.services(&m.Services)
		}
		return false
	})
}

// internCheck returns the constant for a known check status.
func internCheck(b []byte) string {
	for _, st := range CheckStatuses {
		if string(b) == st {
			return st
		}
	}
	return string(b)
}

// services reads [{"name":"http","protocol":"tcp","port":8080},...]: each
// field exactly once, in any order, the port a plain decimal. Anything
// else gives up (a missing field, which encoding/json leaves zero,
// included: it is never valid anyway).
func (s *scanner) services(out *[]Service) bool {
	if !s.next('[') {
		return false
	}
	svcs := []Service{}
	*out = svcs
	if s.next(']') {
		return true
	}
	for {
		if !s.next('{') || s.next('}') {
			return false
		}
		var sv Service
		var seen uint32
		for {
			key, ok := s.str()
			if !ok || !s.next(':') {
				return false
			}
			switch string(key) {
			case "name":
				b, ok := s.str()
				if !ok || !once(&seen, 1) {
					return false
				}
				sv.Name = string(b)
			case "protocol":
				b, ok := s.str()
				if !ok || !once(&seen, 2) {
					return false
				}
				switch string(b) {
				case "tcp":
					sv.Protocol = "tcp"
				case "udp":
					sv.Protocol = "udp"
				default:
					sv.Protocol = string(b)
				}
			case "port":
				if !s.port(&sv.Port) || !once(&seen, 4) {
					return false
				}
			default:
				return false
			}
			if s.next('}') {
				break
			}
			if !s.next(',') {
				return false
			}
		}
		if seen != 7 {
			return false
		}
		svcs = append(svcs, sv)
		*out = svcs
		if s.next(']') {
			return true
		}
		if !s.next(',') {
			return false
		}
	}
}

// port reads a JSON integer 0..99999 with no sign, fraction or exponent.
func (s *scanner) port(p *int) bool {
	s.ws()
	start, n := s.i, 0
	for s.i < len(s.data) && s.data[s.i] >= '0' && s.data[s.i] <= '9' && s.i-start < 5 {
		n = n*10 + int(s.data[s.i]-'0')
		s.i++
	}
	d := s.i - start
	if d == 0 || d > 1 && s.data[start] == '0' {
		return false
	}
	if s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r', ',', '}':
		default:
			return false // a sixth digit, '.', 'e'...
		}
	}
	*p = n
	return true
}

// members reads a nested object of string values, {"k":"v",...}, handing
// each pair to fn; it leaves s after the closing brace.
func (s *scanner) members(fn func(k, v []byte) bool) bool {
	if !s.next('{') {
		return false
	}
	if s.next('}') {
		return true
	}
	for {
		k, ok := s.str()
		if !ok || !s.next(':') {
			return false
		}
		v, ok := s.str()
		if !ok || !fn(k, v) {
			return false
		}
		if s.next('}') {
			return true
		}
		if !s.next(',') {
			return false
		}
	}
}

func hasPrefixAt(data []byte, i int, lit string) bool {
	return len(data)-i >= len(lit) && string(data[i:i+len(lit)]) == lit
}

func decodeAppFast(data []byte, a *AppValue) bool {
	s := scanner{data: data}
	var seen uint32
	return s.object(func(key []byte) bool {
		switch string(key) {
		case "flycast":
			return s.addr(&a.Flycast) && once(&seen, 1)
		case "updated_at":
			return s.time(&a.UpdatedAt) && once(&seen, 2)
		}
		return false
	})
}
