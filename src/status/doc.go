// Package status defines the daemon's status snapshot (what `status --json`,
// the rpcd plugin and D-Bus show) and the root-only unix socket that serves it.
package status
