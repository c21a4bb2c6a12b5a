//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/miekg/dns"
)

// nsdConf is NSD's configuration for one run: everything in dir, no
// privilege drop (dir is root's), no remote control, and response-rate
// limiting off: Debian's NSD limits to 200 answers/s per /24 by default,
// which would measure the limiter, not the server. reuseport gives each
// server process its own socket, NSD's documented setup for several cores.
const nsdConf = `server:
	ip-address: 127.0.0.1@%d
	server-count: %d
	reuseport: yes
	username: ""
	zonesdir: "%[3]s"
	pidfile: "%[3]s/nsd.pid"
	database: ""
	zonelistfile: "%[3]s/zone.list"
	xfrdfile: "%[3]s/xfrd.state"
	xfrdir: "%[3]s"
	logfile: "%[3]s/nsd.log"
	verbosity: 1
	hide-version: yes
	rrl-ratelimit: 0
	rrl-whitelist-ratelimit: 0
remote-control:
	control-enable: no
zone:
	name: "internal"
	zonefile: "internal.zone"
`

// startNSD writes the zone and configuration for org o into dir and runs
// `nsd -d` with servers processes on a free loopback port, returning once
// it answers the zone's SOA.
func startNSD(ctx context.Context, dir string, o *org, ttl, servers int) (*proc, string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	if err := writeZone(filepath.Join(dir, "internal.zone"), o, ttl); err != nil {
		return nil, "", err
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	conf := filepath.Join(dir, "nsd.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nsdConf, port, servers, dir), 0o644); err != nil {
		return nil, "", err
	}
	p, err := startProc(fmt.Sprintf("nsd (server-count %d)", servers), filepath.Join(dir, "nsd.out"), nil, "nsd", "-d", "-c", conf)
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitSOA(ctx, p, addr, time.Minute); err != nil {
		p.Stop(time.Second)
		if log, lerr := os.ReadFile(filepath.Join(dir, "nsd.log")); lerr == nil {
			err = fmt.Errorf("%w\nnsd.log:\n%s", err, log)
		}
		return nil, "", err
	}
	return p, addr, nil
}

// waitSOA polls addr until it answers internal. SOA with NOERROR.
func waitSOA(ctx context.Context, p *proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	for time.Now().Before(deadline) {
		if err := p.errExited(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return errInterrupted
		}
		if r, _, err := c.Exchange(newQuery("internal.", dns.TypeSOA), addr); err == nil && r.Rcode == dns.RcodeSuccess {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s at %s: no SOA answer after %v", p.Name, addr, timeout)
}
