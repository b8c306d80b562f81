// Package ipk writes and reads opkg packages (.ipk) the way OpenWrt's
// scripts/ipkg-build makes them for OpenWrt 23.05 and 24.10.
//
// An OpenWrt .ipk is a gzip'd tar (not a Debian ar archive) holding, in this
// order, ./debian-binary ("2.0\n"), ./data.tar.gz and ./control.tar.gz. The
// control archive holds control, conffiles (when there are any), postinst
// and prerm; postinst and prerm are OpenWrt's stubs that call
// default_postinst / default_prerm from /lib/functions.sh. Installed-Size is
// the size of the uncompressed data tar, as ipkg-build computes it.
//
// Output is deterministic: every entry is owned by 0:0, has one fixed
// modification time, and the gzip headers carry no name or time, so the
// same inputs give the same bytes.
//
// apk.go lays the same package out for OpenWrt 25.12's apk (apk-tools v3)
// and has apk-tools' own `apk mkpkg` write it.
//
// The package is a build tool's library, not shipped on the router: the
// .ipk side does I/O only through the io.Writer, io.Reader and fs.FS values
// it is given; the apk side stages files in a temporary folder and runs the
// apk binary it is given.
package ipk
