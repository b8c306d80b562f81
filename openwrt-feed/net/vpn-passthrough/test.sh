#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# openwrt/packages CI: $1 is the package, $2 its version.
case "$1" in
vpn-passthrough)
	vpn-passthrough --version | grep -F "$2"
	;;
esac
