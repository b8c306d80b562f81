// Package uci parses and writes OpenWrt's UCI configuration syntax, the
// format of the files in /etc/config.
//
// Parse turns the bytes of one file into a File: its Sections in file order,
// each with its Options. File.Bytes writes a File back in the canonical form
// that `uci commit` and `uci export` write. Lookups and edits (Section,
// Get, GetList, Set, Del, AddList, AddSection) follow what the uci command
// does with the same file.
//
// The package does no I/O: callers read and write files themselves, so it
// can be fuzzed and tested on plain bytes. It has no global state.
//
// The syntax is libuci's (file.c in openwrt/uci), including its corners:
//
//   - Statements: `package NAME`, `config TYPE [NAME]`, `option NAME VALUE`,
//     `list NAME VALUE`; each keyword may be shortened to its first letter.
//     `;` separates statements on one line.
//   - A token is unquoted, 'single-quoted' or "double-quoted", and adjacent
//     pieces join: 'a'"b"c is "abc". A backslash takes the next byte
//     literally in unquoted and double-quoted text (no \n-style decoding);
//     at the end of a line it joins the next line. Single quotes have no
//     escapes: a ' inside a value is written as a closing quote, \' and an
//     opening quote (see the example below). Quoted text may span lines and
//     keeps the line breaks.
//   - # starts a comment anywhere outside quotes, also inside a token.
//   - Section and option names are [A-Za-z0-9_]; a package name may also
//     hold '-'; a section type is any printable ASCII except space (so
//     wifi-device is fine).
//   - A later `config TYPE NAME` with an existing NAME reopens that section;
//     a different TYPE is an error, as in uci's default strict mode.
//   - A repeated option replaces the earlier one; a list after an option of
//     the same name turns it into a list holding both values.
//   - An option whose value is an empty quoted string is ignored, as libuci
//     does, so `uci get` and Get agree that it is not set. A list item may be
//     empty.
//
// This package is stricter than libuci in three places: a statement with no
// value at all (option x) is an error here while libuci silently drops it, a
// file holds at most one package, and a NUL byte is refused (libuci's fgets
// would cut the line there).
//
// Bytes writes, for example:
//
//	package firewall
//
//	config zone 'lan'
//		option name 'lan'
//		option comment 'it'\''s'
//		list network 'lan'
//
// (the package line only when File.Package is set).
package uci
