#!/bin/sh
# The OpenWrt test bed's namespace setup (used by bed.go and fw4-render.sh). Run inside new mount
# (and network) namespaces: it chroots into the bed's own root, a tmpfs with the host's top-level
# folders bind-mounted, except /etc and /usr (overlays: the built userland over the host's), /www
# (an overlay on the userland's www), /tmp and /run (tmpfs) and /var (a symlink to /tmp, as on
# OpenWrt). So nothing written inside reaches a host file.
# Usage: bed-setup.sh ROOT SCRATCH [COMMAND...]
set -e
R=$1 D=$2 N=$2/root
mkdir -p $N $D/etc.up $D/etc.wk $D/usr.up $D/usr.wk $D/www.up $D/www.wk $D/top/usr/bin
mount -t tmpfs -o mode=0755 tmpfs $N
for e in /*; do
	n=${e#/}
	case $n in etc|usr|run|tmp|var|www|proc|sys|dev) continue;; esac
	if [ -L "$e" ]; then ln -s "$(readlink "$e")" "$N/$n"
	elif [ -d "$e" ]; then mkdir "$N/$n"; mount --rbind "$e" "$N/$n"
	fi
done
mkdir $N/etc $N/usr $N/tmp $N/run $N/www $N/proc $N/sys $N/dev
# busybox ash as /bin/sh (fw4 needs set -o pipefail; dash rejects it): a layer of its own on top.
ln -sf /usr/bin/busybox $D/top/usr/bin/sh
mount -t overlay overlay -o lowerdir=$R/etc:/etc,upperdir=$D/etc.up,workdir=$D/etc.wk $N/etc
mount -t overlay overlay -o lowerdir=$D/top/usr:$R/usr:/usr,upperdir=$D/usr.up,workdir=$D/usr.wk $N/usr
mount -t overlay overlay -o lowerdir=$R/www,upperdir=$D/www.up,workdir=$D/www.wk $N/www
mount -t tmpfs -o mode=1777 tmpfs $N/tmp
mount -t tmpfs -o mode=0755 tmpfs $N/run
ln -s tmp $N/var
mkdir -p $N/tmp/run/ubus $N/tmp/lock $N/tmp/state $N/tmp/tmp $N/etc/config $N/etc/rc.d
mount --rbind /dev $N/dev
mount -t proc proc $N/proc
mount -t sysfs sysfs $N/sys
ip link set lo up
# Then the command given after root and scratch, else report ready and hold the namespace.
shift 2
[ $# -gt 0 ] || set -- /bin/dash -c 'echo ready && exec sleep 2147483647'
exec chroot $N /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"
