package dnsserver

// linuxUDP is true: UDP is served by the Linux readers (blocking recvmmsg,
// batched or per-packet poller readers, IP_PKTINFO, SO_REUSEPORT); other
// systems use the portable reader in udp_other.go.
const linuxUDP = true

// platformNotes are said at start on systems that lack a Linux feature;
// none here.
func platformNotes() []string { return nil }
