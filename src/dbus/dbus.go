// Package dbus serves the daemon's status.API on D-Bus, for Debian-based
// gateways: the same methods and events as the ubus object, under
//
//	name       com.github.vpn_passthrough.Daemon1 (owned by root)
//	object     /com/github/vpn_passthrough/Daemon1
//	interface  com.github.vpn_passthrough.Daemon1
//
// Methods (JSON strings carry the status wire model, see src/status):
//
//	Status() -> s                 the whole status.Status
//	Sessions() -> s               {schema, state, sessions}
//	Capabilities() -> s           {schema, capabilities, protocols}
//	Check(config s) -> s          status.CheckResult for UCI text
//	Reload()                      re-read the config (root only)
//	DropSession(protocol s, id s) remove one session (root only)
//
// Signals: SessionNew(s), SessionEnd(s) (one status.SessionInfo as JSON),
// Applied(trigger s, error s).
//
// Errors: com.github.vpn_passthrough.Error.{InvalidArgument, UnknownSession,
// NotSupported, AccessDenied, Failed}, each with a message. The policy file
// (com.github.vpn_passthrough.Daemon1.conf, for /usr/share/dbus-1/system.d)
// lets only root own the name and call the write methods and opens the read
// methods to the group vpn-passthrough; the service also checks the
// caller's uid on writes, so a looser policy cannot open them.
package dbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	"github.com/vpn-passthrough/vpn-passthrough/src/jsonenc"
	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

// Names on the bus.
const (
	Name      = "com.github.vpn_passthrough.Daemon1"
	Path      = godbus.ObjectPath("/com/github/vpn_passthrough/Daemon1")
	Interface = Name
	errPrefix = "com.github.vpn_passthrough.Error."
)

type service struct {
	api  status.API
	conn *godbus.Conn
}

func dbusErr(name string, err error) *godbus.Error {
	return godbus.NewError(errPrefix+name, []any{err.Error()})
}

func jsonReply(v any) (string, *godbus.Error) {
	b, err := jsonenc.Marshal(v)
	if err != nil {
		return "", dbusErr("Failed", err)
	}
	return string(b), nil
}

func (s *service) Status() (string, *godbus.Error) { return jsonReply(s.api.Status()) }

func (s *service) Sessions() (string, *godbus.Error) {
	st := s.api.Status()
	return jsonReply(map[string]any{"schema": st.Schema, "state": st.State, "sessions": st.Sessions})
}

func (s *service) Capabilities() (string, *godbus.Error) {
	st := s.api.Status()
	return jsonReply(map[string]any{"schema": st.Schema, "capabilities": st.Capabilities, "protocols": st.Protocols})
}

func (s *service) Check(config string) (string, *godbus.Error) {
	return jsonReply(status.Check("/etc/config/vpn-passthrough", []byte(config)))
}

// rootOnly refuses a caller whose uid is not 0, whatever the bus policy.
func (s *service) rootOnly(sender godbus.Sender) *godbus.Error {
	var uid uint32
	err := s.conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixUser", 0, string(sender)).Store(&uid)
	if err != nil {
		return dbusErr("AccessDenied", fmt.Errorf("cannot tell who the caller is: %w", err))
	}
	if uid != 0 {
		return dbusErr("AccessDenied", fmt.Errorf("uid %d may not change vpn-passthrough: root only", uid))
	}
	return nil
}

func (s *service) Reload(sender godbus.Sender) *godbus.Error {
	if e := s.rootOnly(sender); e != nil {
		return e
	}
	if err := s.api.Reload(); err != nil {
		return dbusErr("Failed", fmt.Errorf("reload refused, the last good state stays: %w", err))
	}
	return nil
}

func (s *service) DropSession(sender godbus.Sender, protocol, id string) *godbus.Error {
	if e := s.rootOnly(sender); e != nil {
		return e
	}
	err := s.api.DropSession(protocol, id)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, status.ErrBadArgument):
		return dbusErr("InvalidArgument", err)
	case errors.Is(err, status.ErrUnknownSession):
		return dbusErr("UnknownSession", err)
	case errors.Is(err, status.ErrNotSupported):
		return dbusErr("NotSupported", err)
	}
	return dbusErr("Failed", err)
}

const introspectXML = `<node>
 <interface name="` + Interface + `">
  <method name="Status"><arg direction="out" type="s"/></method>
  <method name="Sessions"><arg direction="out" type="s"/></method>
  <method name="Capabilities"><arg direction="out" type="s"/></method>
  <method name="Check"><arg name="config" direction="in" type="s"/><arg direction="out" type="s"/></method>
  <method name="Reload"></method>
  <method name="DropSession"><arg name="protocol" direction="in" type="s"/><arg name="id" direction="in" type="s"/></method>
  <signal name="SessionNew"><arg name="session" type="s"/></signal>
  <signal name="SessionEnd"><arg name="session" type="s"/></signal>
  <signal name="Applied"><arg name="trigger" type="s"/><arg name="error" type="s"/></signal>
 </interface>` + introspect.IntrospectDeclarationString + `</node>`

// Connect opens a bus: "system" for the system bus, else an address.
func Connect(bus string) (*godbus.Conn, error) {
	if bus == "system" {
		return godbus.ConnectSystemBus()
	}
	return godbus.Connect(bus)
}

// serveOnce exports the service on one connection and forwards events
// until ctx ends or the connection drops.
func serveOnce(ctx context.Context, conn *godbus.Conn, api status.API, events <-chan status.Event) error {
	s := &service{api: api, conn: conn}
	if err := conn.Export(s, Path, Interface); err != nil {
		return err
	}
	if err := conn.Export(introspect.Introspectable(introspectXML), Path, "org.freedesktop.DBus.Introspectable"); err != nil {
		return err
	}
	reply, err := conn.RequestName(Name, godbus.NameFlagDoNotQueue)
	if err != nil {
		return fmt.Errorf("dbus: request name %s: %w", Name, err)
	}
	if reply != godbus.RequestNameReplyPrimaryOwner {
		return fmt.Errorf("dbus: name %s is taken (reply %d)", Name, reply)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-conn.Context().Done():
			return errors.New("dbus: connection lost")
		case e := <-events:
			var err error
			switch e.Name {
			case status.EventSessionNew, status.EventSessionEnd:
				b, _ := jsonenc.Marshal(e.Session)
				sig := "SessionNew"
				if e.Name == status.EventSessionEnd {
					sig = "SessionEnd"
				}
				err = conn.Emit(Path, Interface+"."+sig, string(b))
			case status.EventApplied:
				err = conn.Emit(Path, Interface+".Applied", e.Trigger, e.Error)
			}
			if err != nil {
				return err
			}
		}
	}
}

// Serve keeps the service on the bus until ctx ends, reconnecting when the
// bus goes away (dbus-daemon restarted).
func Serve(ctx context.Context, bus string, api status.API, log *kvlog.Logger) error {
	events, cancel := api.Subscribe()
	defer cancel()
	warned := false
	for ctx.Err() == nil {
		conn, err := Connect(bus)
		if err == nil {
			log.Info("dbus service registered", "name", Name)
			err = serveOnce(ctx, conn, api, events)
			conn.Close()
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !warned {
			log.Warn("dbus unavailable, retrying", "bus", bus, "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
	return nil
}
