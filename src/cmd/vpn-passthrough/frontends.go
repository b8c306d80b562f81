package main

import (
	"context"

	"github.com/vpn-passthrough/vpn-passthrough/src/daemon"
	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
	"github.com/vpn-passthrough/vpn-passthrough/src/ubus"
)

// frontends are the APIs the daemon serves besides its status socket: the
// ubus object (OpenWrt) and, in builds with D-Bus, the D-Bus service.
func frontends(ubusSock, dbusBus string, log *kvlog.Logger) []daemon.Frontend {
	var fs []daemon.Frontend
	if ubusSock != "off" && ubusSock != "" {
		fs = append(fs, func(ctx context.Context, api status.API) error {
			return ubus.ServeAPI(ctx, ubusSock, api, log.With("frontend", "ubus"))
		})
	}
	if dbusBus != "off" && dbusBus != "" {
		fs = append(fs, dbusFrontend(dbusBus, log.With("frontend", "dbus")))
	}
	return fs
}
