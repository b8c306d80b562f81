package ubus

import (
	"context"
	"errors"
	"fmt"

	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

// ObjectName is the daemon's object on ubus.
const ObjectName = "vpn-passthrough"

// Event names on ubus (`ubus listen vpn-passthrough.*`).
const EventPrefix = "vpn-passthrough."

// NewObject is the vpn-passthrough object over the daemon's API. Every
// reply carries the status schema (status.SchemaVersion) so LuCI can refuse
// a model it does not know.
func NewObject(api status.API) *Object {
	none := map[string]int{}
	return &Object{Name: ObjectName, Methods: []Method{
		{Name: "status", Params: none, Handler: func(a map[string]any) (any, error) {
			if err := checkArgs(a, nil); err != nil {
				return nil, err
			}
			return api.Status(), nil
		}},
		{Name: "sessions", Params: none, Handler: func(a map[string]any) (any, error) {
			if err := checkArgs(a, nil); err != nil {
				return nil, err
			}
			s := api.Status()
			return map[string]any{"schema": s.Schema, "state": s.State, "sessions": s.Sessions}, nil
		}},
		{Name: "capabilities", Params: none, Handler: func(a map[string]any) (any, error) {
			if err := checkArgs(a, nil); err != nil {
				return nil, err
			}
			s := api.Status()
			return map[string]any{"schema": s.Schema, "capabilities": s.Capabilities, "protocols": s.Protocols}, nil
		}},
		{Name: "reload", Params: none, Handler: func(a map[string]any) (any, error) {
			if err := checkArgs(a, nil); err != nil {
				return nil, err
			}
			if err := api.Reload(); err != nil {
				return nil, &Error{Status: StatusUnknownError, Msg: "reload refused, the last good state stays: " + err.Error()}
			}
			return map[string]any{"applied": true}, nil
		}},
		{Name: "drop_session", Params: map[string]int{"protocol": TypeString, "id": TypeString}, Handler: func(a map[string]any) (any, error) {
			if err := checkArgs(a, map[string]bool{"protocol": true, "id": true}); err != nil {
				return nil, err
			}
			if err := api.DropSession(a["protocol"].(string), a["id"].(string)); err != nil {
				return nil, apiError(err)
			}
			return map[string]any{"dropped": a["id"]}, nil
		}},
		{Name: "check", Params: map[string]int{"config": TypeString, "name": TypeString}, Handler: func(a map[string]any) (any, error) {
			if err := checkArgs(a, map[string]bool{"config": true, "name": false}); err != nil {
				return nil, err
			}
			name, _ := a["name"].(string)
			if name == "" {
				name = "/etc/config/vpn-passthrough"
			}
			return status.Check(name, []byte(a["config"].(string))), nil
		}},
	}}
}

// checkArgs refuses arguments that are unknown, missing or not strings
// (spec: name -> required). rpcd adds ubus_rpc_session to every call from
// the web; it is allowed everywhere.
func checkArgs(a map[string]any, spec map[string]bool) error {
	for k, v := range a {
		if k == "ubus_rpc_session" {
			continue
		}
		if _, ok := spec[k]; !ok {
			return &Error{Status: StatusInvalidArgument, Msg: fmt.Sprintf("unknown argument %q", k)}
		}
		if _, ok := v.(string); !ok {
			return &Error{Status: StatusInvalidArgument, Msg: fmt.Sprintf("argument %q must be a string", k)}
		}
	}
	for k, req := range spec {
		if s, _ := a[k].(string); req && s == "" {
			return &Error{Status: StatusInvalidArgument, Msg: fmt.Sprintf("argument %q is required", k)}
		}
	}
	return nil
}

func apiError(err error) error {
	st := StatusUnknownError
	switch {
	case errors.Is(err, status.ErrBadArgument):
		st = StatusInvalidArgument
	case errors.Is(err, status.ErrUnknownSession):
		st = StatusNotFound
	case errors.Is(err, status.ErrNotSupported):
		st = StatusNotSupported
	}
	return &Error{Status: st, Msg: err.Error()}
}

// ServeAPI registers the object on the ubusd at path and sends the
// daemon's events until ctx ends, reconnecting when ubusd restarts.
func ServeAPI(ctx context.Context, path string, api status.API, log *kvlog.Logger) error {
	evs, cancel := api.Subscribe()
	defer cancel()
	out := make(chan [2]any, 64)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-evs:
				select {
				case out <- [2]any{EventPrefix + e.Name, e}:
				default: // ubusd is away: events are not queued up
				}
			}
		}
	}()
	Serve(ctx, path, NewObject(api), out, log)
	return nil
}
