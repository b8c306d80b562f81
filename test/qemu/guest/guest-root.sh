#!/bin/bash
# PID 1 of the x86_64 real-peer guest, after init9p switched to the
# debootstrap root: mount what the daemons need, then run the scenarios
# named in /vpt/scenarios (realpeer.sh) and power off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mountpoint -q /dev || mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o ptmxmode=0666 devpts /dev/pts
ln -sf pts/ptmx /dev/ptmx 2>/dev/null
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/netns /run/lock /run/pluto /run/xl2tpd /var/log
echo /sbin/modprobe >/proc/sys/kernel/modprobe
hostname vpt-guest
ip link set lo up
echo "VPT-BOOTED $(uname -m) $(uname -r) $(cut -d' ' -f1 /proc/uptime)s"
bash /vpt/realpeer.sh
echo "VPT-END"
sync
echo o >/proc/sysrq-trigger
sleep 5
