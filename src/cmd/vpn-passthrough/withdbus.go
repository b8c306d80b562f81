//go:build dbus

package main

import (
	"context"

	"github.com/vpn-passthrough/vpn-passthrough/src/daemon"
	"github.com/vpn-passthrough/vpn-passthrough/src/dbus"
	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

const dbusName = dbus.Name

// dbusFrontend serves the D-Bus service on bus ("system" or an address).
func dbusFrontend(bus string, log *kvlog.Logger) daemon.Frontend {
	return func(ctx context.Context, api status.API) error { return dbus.Serve(ctx, bus, api, log) }
}
