#!/usr/bin/env bash
# Runs the whole test suite. This is the one command to run on a fresh Debian
# machine that has Go: it first installs whatever the tests need and is
# missing (DNS tools from Debian, the etcd server binary), then runs go vet
# and go test. Tests that need a tool skip without it, but fail under CI=true,
# so CI cannot pass by silently skipping.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "test.sh: $*"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- Debian packages: dig, dnsperf, ip (for network-namespace tests).
missing=()
command -v dig >/dev/null || missing+=(bind9-dnsutils)
command -v dnsperf >/dev/null || missing+=(dnsperf)
command -v ip >/dev/null || missing+=(iproute2)
# NSD: the load benchmark's smoke test serves the same registry from it.
command -v nsd >/dev/null || missing+=(nsd)
# Deployment checks: the unit files (systemd-analyze) and the firewall rules
# of docs/deploy.md (nft).
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v nft >/dev/null || missing+=(nftables)
# The shipped alerting rules are checked with promtool.
command -v promtool >/dev/null || missing+=(prometheus)
# The status page is rendered by headless Chromium (integration/ops).
command -v chromium >/dev/null || missing+=(chromium)
# Debian's etcd 3.4 (/usr/bin/etcd, /usr/bin/etcdctl): integration/fleet runs
# meshdns through an older cluster and gRPC proxy too. The 3.7 binary built
# below stays first on PATH; the fleet test runs /usr/bin/etcd by its path.
[[ -x /usr/bin/etcd ]] || missing+=(etcd-server)
[[ -x /usr/bin/etcdctl ]] || missing+=(etcd-client)
if ((${#missing[@]} > 0)); then
	if [[ $(id -u) -eq 0 ]]; then
		say "installing Debian packages: ${missing[*]}"
		# Another apt run may hold the dpkg lock (e.g. on a machine still
		# provisioning): wait for it instead of failing.
		apt_opts=(-o DPkg::Lock::Timeout=600 -q)
		apt-get "${apt_opts[@]}" update
		# Packages with daemons (nsd) must not start them: the tests run
		# their own instances on their own ports.
		no_start=
		if [[ ! -e /usr/sbin/policy-rc.d ]]; then
			printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
			chmod +x /usr/sbin/policy-rc.d
			no_start=1
		fi
		DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y "${missing[@]}"
		if [[ -n $no_start ]]; then rm -f /usr/sbin/policy-rc.d; fi
	else
		say "WARNING: not root, so not installing ${missing[*]}; tests that need them will be skipped"
	fi
fi

# --- etcd server binary, for tests that run real etcd processes.
# Its version is the go.etcd.io/etcd/server/v3 version in go.mod, so the
# binary and the embedded etcd used by other tests are the same release.
etcd_version=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
if [[ -n ${ETCD_BIN:-} ]]; then
	say "using ETCD_BIN=$ETCD_BIN"
else
	gobin=$(go env GOBIN)
	if [[ -z $gobin ]]; then
		gopath=$(go env GOPATH)
		gobin=${gopath%%:*}/bin
	fi
	# First on PATH, so it wins over any other etcd (tests look on PATH).
	export PATH="$gobin:$PATH"
	installed=$("$gobin/etcd" --version 2>/dev/null || true)
	if [[ $installed != *"etcd Version: ${etcd_version#v}"* ]]; then
		say "building etcd $etcd_version into $gobin"
		# `go install go.etcd.io/etcd/server/v3@VERSION` refuses to build
		# because etcd's go.mod has replace directives; building it as a
		# dependency of this module works, at exactly go.mod's version.
		mkdir -p "$gobin"
		go build -o "$gobin/etcd" go.etcd.io/etcd/server/v3
	fi
fi

# --- The checks. Plain go test also runs every fuzz target on its seed
# corpus. Run every step even if one fails, to report everything at once.
status=0
say "go vet ./..."
go vet ./... || status=1
# Cross-builds: meshdns serves on macOS, FreeBSD and Windows with the
# portable UDP reader (dnsserver/udp_other.go); build everything there and
# vet the server for macOS, so Linux-only calls cannot creep back in.
# cmd/meshbench builds everywhere but only runs on Linux (main_other.go).
for goos in darwin windows freebsd; do
	say "GOOS=$goos go build ./..."
	GOOS=$goos go build ./... || status=1
done
say "GOOS=darwin go vet ./dnsserver/ ./cmd/meshdns/"
GOOS=darwin go vet ./dnsserver/ ./cmd/meshdns/ || status=1
# No tracked file over 1 MiB outside testdata/ (build outputs stay out).
say "scripts/check-files.sh"
bash scripts/check-files.sh || status=1
# The container image builds with scripts/build.sh; run it here so CI proves
# that command works.
say "scripts/build.sh"
OUT="$work/bin" bash scripts/build.sh || status=1
# One package at a time (-p 1). Several packages time things against the
# wall clock on a busy 2-core machine: integration/faults floods meshdns and
# needs it to have a core of its own, and the local-copy and etcd-down tests
# bound the time to a first answer. Each package already orders its own tests
# (the floods run first and alone); with go test's default of two packages at
# once, another package's etcd cluster or fleet benchmark shared the cores
# and CI once failed TestFlood with meshdns given 0.55 of a core. Serial adds
# about two minutes to the run. The packages are compiled first, in
# parallel; -p 1 then links and runs one test binary at a time.
say "go test -count=1 -run '^$' ./... (build the test binaries)"
if ! out=$(go test -count=1 -run '^$' ./... 2>&1); then
	echo "$out"
	status=1
fi
say "go test -count=1 -p 1 -timeout 40m ./..."
go test -count=1 -p 1 -timeout 40m ./... || status=1
# The core packages again under the race detector: their readers and the
# registry's feeder share snapshots, caches and counters across goroutines.
# All their tests, no -short: 74-82 s of CPU, 1m15s wall on an idle 2-core
# machine, 3m06s with load 14 from other work (warm build cache).
race_pkgs=(./registry/ ./internal/etcdwatch/ ./zones/ ./dnsserver/ ./forward/ ./metrics/)
say "go test -race -count=1 ${race_pkgs[*]}"
go test -race -count=1 -timeout 20m "${race_pkgs[@]}" || status=1
if ((status != 0)); then
	say "FAILED"
fi
exit "$status"
