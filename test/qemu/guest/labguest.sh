#!/bin/sh
# /vpt/guest.sh of the architecture guests: runs the namespace lab's own
# tests (cross-compiled test binaries) against the cross-compiled daemon on
# this guest's Debian kernel. /vpt/tests lists "name binary -test.run".
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# fw4: real fw4 (test/openwrt, an x86_64 host build) cannot run in these
# guests; the host rendered the lab routers' rulesets with it before the
# boot, and the stand-in /vpt/repo/test/openwrt/fw4-render.sh serves them
# to the lab, which so loads real fw4's rendering (no ../shared sample).
# No CI=true: a skipped test fails the scenario here anyway (below).
# TCG emulation is several times slower than the host: functional time
# bounds in the lab (lab.Scale) stretch by this factor.
export VPNPT_TIME_SCALE=4
export VPNPT_BIN=/vpt/vpn-passthrough VPNPT_PEER=/vpt/peer VPNPT_SHARED=/vpt/shared HOME=/tmp TMPDIR=/tmp
# s390x: crc32c_generic before libcrc32c and nf_tables (libcrc32c finds no
# crc32c otherwise), then the rest autoloads through /sbin/modprobe.
/sbin/modprobe crc32c_generic 2>/dev/null
/sbin/modprobe -a libcrc32c nf_tables nfnetlink nf_conntrack nf_conntrack_netlink nfnetlink_queue nft_compat \
	xt_NFQUEUE nft_queue nf_nat nft_chain_nat nf_conntrack_pptp nf_nat_pptp veth 2>/dev/null
echo "VPT-INFO setup modules: $(wc -l </proc/modules) loaded; nf_tables $(grep -c '^nf_tables ' /proc/modules)"
cd /vpt/repo
while read -r name bin run skip; do
	[ -n "$name" ] || continue
	echo "VPT-SCENARIO $name"
	t0=$(cut -d. -f1 /proc/uptime)
	if [ "$skip" != - ]; then
		echo "VPT-INFO $name not run here (see test/qemu/main.go labTests): $skip"
		/vpt/$bin -test.v -test.count=1 -test.timeout=20m -test.run "$run" -test.skip "$skip" >/tmp/$name.out 2>&1
	else
		/vpt/$bin -test.v -test.count=1 -test.timeout=20m -test.run "$run" >/tmp/$name.out 2>&1
	fi
	rc=$?
	grep -E '^\s*--- (PASS|FAIL|SKIP)' /tmp/$name.out | sed "s/^/VPT-INFO $name /"
	echo "VPT-INFO $name fw4: $(grep -c 'loaded the ruleset real fw4 renders' /tmp/$name.out) lab routers on real fw4's rendering, $(grep -c 'falling back to the emulation' /tmp/$name.out) on the emulation"
	t1=$(cut -d. -f1 /proc/uptime)
	echo "VPT-INFO $name took $((t1 - t0)) s"
	if [ $rc = 0 ] && grep -q -- '--- PASS' /tmp/$name.out && ! grep -q -- '--- SKIP' /tmp/$name.out; then
		echo "VPT-RESULT $name PASS $(grep -c -- '--- PASS' /tmp/$name.out) tests passed"
	else
		# The tests' own messages first (what failed, and whether a
		# time bound ran out), then the end of the output (daemon logs).
		grep -E '^\s+[a-z0-9_]+\.go:[0-9]+: ' /tmp/$name.out | head -n 60 | sed "s/^/VPT-INFO $name /"
		grep -v -E '^\s*--- PASS|^=== (RUN|PAUSE|CONT)' /tmp/$name.out | tail -n 40 | sed "s/^/VPT-INFO $name /"
		echo "VPT-RESULT $name FAIL exit $rc (skips count as failures here)"
	fi
done </vpt/tests
