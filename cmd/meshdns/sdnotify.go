package main

import (
	"context"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// Readiness notification for systemd (Type=notify). meshdns says READY=1
// once its snapshot is confirmed current with etcd — the same moment
// /readyz turns 200 — and, when the unit sets WatchdogSec, WATCHDOG=1 at
// half that interval for as long as its own DNS listener answers a probe.
// Serving from a local copy during an etcd outage is still serving: the
// watchdog keeps being fed, so systemd does not restart meshdns for
// etcd's sake (the unit sets TimeoutStartSec=infinity for the same reason:
// a host that boots during an outage answers from its local copy while it
// waits). Without NOTIFY_SOCKET nothing here runs.

// systemdNotifier tells systemd about meshdns's state.
type systemdNotifier struct {
	log *zap.Logger
	// ready reports whether the snapshot is confirmed current.
	ready func() bool
	// probe is the address of meshdns's own DNS listener.
	probe netip.AddrPort
	// poll is how often readiness is checked.
	poll time.Duration
}

// run notifies systemd until ctx ends, then says STOPPING=1.
func (n systemdNotifier) run(ctx context.Context) {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return
	}
	watchdog, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn("systemd watchdog setting not understood; not feeding it", zap.Error(err))
	}
	if n.poll <= 0 {
		n.poll = 100 * time.Millisecond
	}
	n.notify("STATUS=answering from the local copy (if any); waiting for etcd")
	poll := time.NewTicker(n.poll)
	defer poll.Stop()
	var feed <-chan time.Time
	if watchdog > 0 {
		t := time.NewTicker(watchdog / 2)
		defer t.Stop()
		feed = t.C
		n.feed(ctx, watchdog/4)
	}
	wasReady := false
	for {
		select {
		case <-ctx.Done():
			n.notify(daemon.SdNotifyStopping)
			return
		case <-feed:
			n.feed(ctx, watchdog/4)
		case <-poll.C:
			ready := n.ready()
			switch {
			case ready && !wasReady:
				n.notify(daemon.SdNotifyReady + "\nSTATUS=answering; registry current with etcd")
			case !ready && wasReady:
				n.notify("STATUS=answering from the last snapshot; not confirmed current with etcd")
			}
			wasReady = ready
		}
	}
}

// feed sends WATCHDOG=1 if meshdns's own listener answers a query within
// timeout. Any answer counts (from loopback it is usually REFUSED): the
// watchdog is about the server answering, not about what it knows.
func (n systemdNotifier) feed(ctx context.Context, timeout time.Duration) {
	if err := n.probeDNS(ctx, timeout); err != nil {
		n.log.Warn("own DNS listener did not answer; not feeding the systemd watchdog", zap.Stringer("probe", n.probe), zap.Error(err))
		return
	}
	n.notify(daemon.SdNotifyWatchdog)
}

func (n systemdNotifier) probeDNS(ctx context.Context, timeout time.Duration) error {
	q := new(dns.Msg)
	q.SetQuestion("internal.", dns.TypeSOA)
	c := &dns.Client{Net: "udp", Timeout: max(timeout, 100*time.Millisecond)}
	_, _, err := c.ExchangeContext(ctx, q, n.probe.String())
	return err
}

func (n systemdNotifier) notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Warn("cannot notify systemd", zap.String("state", state), zap.Error(err))
	}
}

// probeAddr is where meshdns can ask itself: the first listen address, with
// a wildcard replaced by the loopback address of its family.
func probeAddr(addrs []net.Addr) netip.AddrPort {
	for _, a := range addrs {
		ua, ok := a.(*net.UDPAddr)
		if !ok {
			continue
		}
		ap := ua.AddrPort()
		ip := ap.Addr().Unmap()
		if ip.IsUnspecified() {
			if ip.Is4() {
				ip = netip.MustParseAddr("127.0.0.1")
			} else {
				ip = netip.IPv6Loopback()
			}
		}
		return netip.AddrPortFrom(ip, ap.Port())
	}
	return netip.AddrPort{}
}
