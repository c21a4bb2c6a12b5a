//go:build linux

package main

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// writeZone writes org o's names of the standard mix as the zone
// "internal." for NSD, so NSD answers the mix exactly as SPEC says meshdns
// must (AAAA sets, TXT bytes, NXDOMAIN, NODATA), with the same TTLs.
//
// Names that exist in meshdns without any started machine (a region or
// machine id whose machines are all stopped) get a placeholder HINFO
// record: a zone file cannot hold a name with no records, and the mix
// never asks HINFO, so their AAAA answer is NODATA on both servers.
// <app>.internal needs none: vms.<app> below it makes it exist.
// Names outside the mix (global., regions., _apps...) are left out.
func writeZone(path string, o *org, ttl int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintf(w, "$ORIGIN internal.\n$TTL %d\n", ttl)
	fmt.Fprintf(w, "@ SOA ns.internal. hostmaster.internal. 1 3600 600 86400 %d\n", ttl)
	fmt.Fprintf(w, "@ NS ns.internal.\nns AAAA %s\n", apiAddr(o))
	for _, a := range o.Apps {
		writeApp(w, a)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeApp(w *bufio.Writer, a *app) {
	for _, m := range a.Machines {
		if m.Started {
			fmt.Fprintf(w, "%s AAAA %s\n", a.Name, m.IP)
		}
	}
	fmt.Fprintf(w, "vms.%s TXT %s\n", a.Name, txtStrings(vmsText(a)))
	byRegion := map[string][]*machine{}
	for _, m := range a.Machines {
		byRegion[m.Region] = append(byRegion[m.Region], m)
	}
	regions := make([]string, 0, len(byRegion))
	for r := range byRegion {
		regions = append(regions, r)
	}
	slices.Sort(regions)
	for _, r := range regions {
		any := false
		for _, m := range byRegion[r] {
			if m.Started {
				fmt.Fprintf(w, "%s.%s AAAA %s\n", r, a.Name, m.IP)
				any = true
			}
		}
		if !any {
			fmt.Fprintf(w, "%s.%s HINFO \"placeholder\" \"no started machine\"\n", r, a.Name)
		}
	}
	for _, m := range a.Machines {
		if m.Started {
			fmt.Fprintf(w, "%s.vm.%s AAAA %s\n", m.ID, a.Name, m.IP)
		} else {
			fmt.Fprintf(w, "%s.vm.%s HINFO \"placeholder\" \"stopped\"\n", m.ID, a.Name)
		}
	}
}

// txtStrings renders one TXT record's text as zone-file character-strings
// of at most 255 bytes. The texts hold only [0-9a-z ,], so quoting is enough.
func txtStrings(s string) string {
	if s == "" {
		return `""`
	}
	var b strings.Builder
	for len(s) > 0 {
		n := min(len(s), 255)
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(`"` + s[:n] + `"`)
		s = s[n:]
	}
	return b.String()
}

// apiAddr is the org's DNS address, <network>::3.
func apiAddr(o *org) string {
	a := o.Net.Addr().As16()
	a[15] = 3
	return netip.AddrFrom16(a).String()
}
