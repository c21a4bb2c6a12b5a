//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Measurements come from /proc, not from the servers, so meshdns and NSD
// are measured by the same ruler.

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux build we run on (getconf CLK_TCK); Go cannot ask sysconf without cgo.
const clockTicks = 100

// procTree is a process and its descendants (NSD forks its servers).
func procTree(root int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f, err := statFields(pid); err == nil {
			ppid, _ := strconv.Atoi(f[1])
			parent[pid] = ppid
		}
	}
	var out []int
	for pid := range parent {
		for p := pid; p > 1; p = parent[p] {
			if p == root {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// statFields returns the fields of /proc/<pid>/stat after the command
// name, starting with state: f[0] is field 3 of proc(5).
func statFields(pid int) ([]string, error) {
	return statFieldsAt(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
}

func statFieldsAt(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// The command name may contain spaces and parentheses; it ends at the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return nil, fmt.Errorf("%s: unexpected format", path)
	}
	return strings.Fields(string(data[i+1:])), nil
}

// cpuTime is the user+system CPU time of pid and its live descendants.
// Threads that exited are included (the kernel folds them into the
// process); children that exited and were reaped are not, which is fine
// for long-lived servers.
func cpuTime(root int) time.Duration {
	var total time.Duration
	for _, pid := range procTree(root) {
		total += statCPU(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	}
	return total
}

// statCPU is utime+stime of one /proc/.../stat file (a process or a thread).
func statCPU(path string) time.Duration {
	f, err := statFieldsAt(path)
	if err != nil || len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // utime, field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // stime, field 15
	return time.Duration(ut+st) * time.Second / clockTicks
}

// memKiB sums a /proc/<pid>/status field (VmHWM, VmRSS) over pid and its
// descendants. For NSD this counts pages its forked servers share once per
// process, so it overstates NSD's real footprint.
func memKiB(root int, field string) int64 {
	var total int64
	for _, pid := range procTree(root) {
		data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, field+":"); ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				total += n
			}
		}
	}
	return total
}

// hostCPU is the machine's busy and total CPU time from /proc/stat, in
// ticks, to tell whether a run was limited by the machine rather than by
// the server. irq is the part spent in interrupts and softirqs: on
// loopback that is mostly delivering the benchmark's own packets, which
// the kernel charges to no process.
type hostCPU struct{ busy, irq, total int64 }

func readHostCPU() hostCPU {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return hostCPU{}
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var h hostCPU
	for i, s := range f[1:] {
		n, _ := strconv.ParseInt(s, 10, 64)
		if i >= 8 { // guest time is already counted in user
			break
		}
		h.total += n
		if i != 3 && i != 4 { // idle, iowait
			h.busy += n
		}
		if i == 5 || i == 6 { // irq, softirq
			h.irq += n
		}
	}
	return h
}

// busyCores is how many cores were busy on average between a and b.
func busyCores(a, b hostCPU, ncpu int) float64 {
	if b.total <= a.total {
		return 0
	}
	return float64(b.busy-a.busy) / float64(b.total-a.total) * float64(ncpu)
}

// irqCores is how many cores were in interrupts on average between a and b.
func irqCores(a, b hostCPU, ncpu int) float64 {
	if b.total <= a.total {
		return 0
	}
	return float64(b.irq-a.irq) / float64(b.total-a.total) * float64(ncpu)
}
