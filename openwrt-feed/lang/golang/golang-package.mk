# SPDX-License-Identifier: Apache-2.0
# In openwrt/packages, net/vpn-passthrough/Makefile includes
# ../../lang/golang/golang-package.mk. This feed has no Go toolchain of its
# own: hand over to the packages feed's copy, so that the package Makefile
# reads exactly as it would there.
include $(TOPDIR)/feeds/packages/lang/golang/golang-package.mk
