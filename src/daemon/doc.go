// Package daemon runs vpn-passthrough: load (src/loader) -> apply,
// reload on SIGHUP, repair when our table is deleted, serve status, and remove
// everything on shutdown. A refused config never replaces the last good state.
package daemon
