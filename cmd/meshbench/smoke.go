//go:build linux

package main

import (
	"time"

	"github.com/spf13/cobra"
)

// smoke runs every benchmark on a tiny registry with 3-second runs capped
// at 20,000 queries per second: it proves the tooling works end to end
// (CI runs it through smoke_test.go) and asserts nothing about speed. It
// does fail if a checked answer differs from SPEC, on meshdns or on NSD.
func newSmokeCmd(newE envMaker) *cobra.Command {
	return &cobra.Command{
		Use:   "smoke",
		Short: "Every benchmark on a tiny registry with short runs, for CI: prints the tables, asserts nothing about speed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			short := func(c *common) {
				if !f.Changed("duration") {
					c.Duration = 3 * time.Second
				}
				if !f.Changed("warmup") {
					c.Warmup = time.Second
				}
				// CI runs other tests beside this one: neither wait for a
				// quiet machine nor take all of it.
				if !f.Changed("quiet") {
					c.Quiet = 0
				}
				if !f.Changed("noisy") {
					c.Noisy = 0
				}
				if !f.Changed("dnsperf-args") {
					c.DnsperfArgs = "-Q 20000"
				}
			}
			return runSmoke(newE, short)
		},
	}
}

func runSmoke(newE envMaker, short func(*common)) error {
	// Build meshdns once, in a directory that outlives the three runs.
	e0, err := newE(short)
	if err != nil {
		return err
	}
	defer e0.close()
	bin, err := e0.meshdnsBin()
	if err != nil {
		return err
	}
	mod := func(c *common) { short(c); c.Meshdns = bin }
	small := genConfig{Orgs: 1, Apps: 40, Machines: 200, ZipfS: 1.1, Stopped: 0.1}

	// Each benchmark gets its own env, so its own etcd: their registries
	// would otherwise mix under the same prefix.
	steps := []func(e *env) error{
		func(e *env) error {
			_, err := runQPS(e, qpsConfig{Gen: small, Loader: loaderPutAll, Queries: 5000, Cores: []int{2},
				Rounds: 1, Check: 200, NSD: true, Strict: true, ReadyTimeout: time.Minute})
			return err
		},
		func(e *env) error {
			return runPropagation(e, propConfig{Gen: small, Loader: loaderPutAll, Changes: 30,
				Timeout: 5 * time.Second, ReadyTimeout: time.Minute})
		},
		func(e *env) error {
			return runScale(e, scaleConfig{Gen: genConfig{Orgs: 20, Apps: 100, Machines: 1000, Stopped: 0.1},
				Base: small, Loader: loaderTxn, Queries: 5000, Rounds: 1, ReadyTimeout: time.Minute,
				Restart: true, Settle: time.Second, ReadyzWait: 10 * time.Second})
		},
		func(e *env) error {
			// A 3-member etcd cluster, one gRPC proxy, 3 hosts and 3
			// meshdns; fails if any write fails to reach a host or meshdns.
			return runFleet(e, fleetConfig{Gen: genConfig{Orgs: 4, Apps: 40, Machines: 400, ZipfS: 1.1, Stopped: 0.1},
				Hosts: []int{3}, Proxies: []int{1}, Writes: []int{5}, Meshdns: 3, DNSEvery: 2,
				Late: 5 * time.Second, Drain: 5 * time.Second, Herd: true, ReadyTimeout: time.Minute, HerdTimeout: time.Minute,
				IdleWindow: time.Second, Strict: true, ReadyHeap: true})
		},
	}
	for _, step := range steps {
		e, err := newE(mod)
		if err != nil {
			return err
		}
		err = step(e)
		e.close()
		if err != nil {
			return err
		}
	}
	return nil
}
