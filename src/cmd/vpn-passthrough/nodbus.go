//go:build !dbus

package main

import (
	"context"
	"errors"

	"github.com/vpn-passthrough/vpn-passthrough/src/daemon"
	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

const dbusName = "com.github.vpn_passthrough.Daemon1"

// dbusFrontend: this build has no D-Bus (build with -tags dbus for it);
// asking for it is an error the daemon reports, not a silent no-op.
func dbusFrontend(string, *kvlog.Logger) daemon.Frontend {
	return func(context.Context, status.API) error {
		return errors.New("dbus: this binary was built without D-Bus support (build tag dbus)")
	}
}
