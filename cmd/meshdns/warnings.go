package main

import (
	"net"
	"net/netip"
	"net/url"

	"go.uber.org/zap"
)

// startWarning is a setting combination that works but is unsafe outside a
// developer's machine: meshdns starts, and says so at warn level.
type startWarning struct {
	msg    string
	fields []zap.Field
}

// unsafeSettings lists the risky combinations of o.
//
//   - --default-org with a listener that is not on loopback: every source
//     outside all orgs' networks counts as a member of that org, so anyone
//     who can reach the listener reads the org's registry and, with
//     --upstream, uses meshdns as an open resolver.
//   - the embedded etcd serving clients or peers on a non-loopback address:
//     it has neither TLS nor auth, so anyone who reaches it can rewrite the
//     registry every org's answers come from.
func unsafeSettings(o *options) []startWarning {
	var out []startWarning
	if o.defaultOrg != "" {
		var exposed []string
		for _, l := range o.listen {
			if !loopbackHostPort(l) {
				exposed = append(exposed, l)
			}
		}
		if len(exposed) > 0 {
			out = append(out, startWarning{
				msg:    "--default-org with a listener outside loopback: every source in no org's network is answered as a member of the default org; use --default-org only on loopback or on a single-org host whose firewall admits only that org",
				fields: []zap.Field{zap.String("default_org", o.defaultOrg), zap.Strings("listen", exposed)},
			})
		}
	}
	if len(o.etcdEndpoints) == 0 {
		for _, f := range [][2]string{{"--embedded-etcd-url", o.embeddedEtcdURL}, {"--embedded-etcd-peer-url", o.embeddedEtcdPeerURL}} {
			flag, u := f[0], f[1]
			if u != "" && !loopbackURL(u) {
				out = append(out, startWarning{
					msg:    flag + " is not a loopback address and the embedded etcd has no TLS or auth: anyone who reaches it can rewrite the registry; keep it on 127.0.0.1, or run an external etcd cluster with TLS and auth (--etcd-endpoints)",
					fields: []zap.Field{zap.String("url", u)},
				})
			}
		}
	}
	return out
}

// loopbackHostPort reports whether a listen address (host:port) binds only
// loopback. A wildcard ([::], 0.0.0.0, empty host) or a name is not.
func loopbackHostPort(hp string) bool {
	host, _, err := net.SplitHostPort(hp)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

func loopbackURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(u.Hostname())
	return err == nil && a.IsLoopback()
}

// warnUnsafeSettings logs each risky combination of o.
func warnUnsafeSettings(log *zap.Logger, o *options) {
	for _, w := range unsafeSettings(o) {
		log.Warn(w.msg, w.fields...)
	}
}
