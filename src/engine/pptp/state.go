package pptp

import (
	"github.com/vpn-passthrough/vpn-passthrough/src/engine/statefile"
	"github.com/vpn-passthrough/vpn-passthrough/src/jsonenc"

	"errors"
	"io/fs"
	"net/netip"
	"os"
	"time"
)

// The call table survives a crash of the daemon (SIGKILL, OOM kill) in a
// small JSON file, written whenever a call is added, learns the server's Call
// ID or goes away (never per packet), and read when the engine starts. See
// doc.go for why this and not the kernel's state.

const stateVersion = 1

type stateFile struct {
	Version int         `json:"version"`
	BootID  string      `json:"boot_id"`
	Saved   time.Time   `json:"saved"`
	Calls   []stateCall `json:"calls"`
}

type stateCall struct {
	Client  string    `json:"client"`             // LAN address:port of the control connection
	Server  string    `json:"server"`             // server address:port
	WAN     string    `json:"wan,omitempty"`      // the router's address the server talks to
	NATPort uint16    `json:"nat_port,omitempty"` // and the masqueraded port
	Orig    uint16    `json:"call_id"`
	Trans   uint16    `json:"translated"`
	Peer    *uint16   `json:"server_call_id,omitempty"`
	Created time.Time `json:"created"`
}

// snapshotLocked serialises the call table.
func (e *Engine) snapshotLocked() []byte {
	sf := stateFile{Version: stateVersion, BootID: statefile.BootID(), Saved: e.now().UTC(), Calls: []stateCall{}}
	for _, c := range e.conns {
		for _, cl := range c.calls {
			sc := stateCall{Client: c.client.String(), Server: c.server.String(), Orig: cl.orig, Trans: cl.trans,
				Created: cl.created.UTC()}
			if c.wan.IsValid() {
				sc.WAN = c.wan.String()
			}
			sc.NATPort = c.natPort
			if cl.havePeer {
				p := cl.peer
				sc.Peer = &p
			}
			sf.Calls = append(sf.Calls, sc)
		}
	}
	b, _ := jsonenc.Marshal(sf)
	return b
}

func (e *Engine) removeState() {
	if err := os.Remove(e.statePath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		e.log.Warn("pptp state not removed", "path", e.statePath, "err", err)
	}
}

// loadState restores calls from a previous run. A file from another boot
// is ignored: its connections cannot exist any more.
func (e *Engine) loadState(path string) (int, error) {
	var sf stateFile
	if ok, err := statefile.Load(path, stateVersion, &sf); !ok {
		return 0, err
	}
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, s := range sf.Calls {
		client, err1 := netip.ParseAddrPort(s.Client)
		server, err2 := netip.ParseAddrPort(s.Server)
		if err1 != nil || err2 != nil || !client.Addr().Is4() || !server.Addr().Is4() || s.Trans == 0 {
			continue
		}
		key := connKey{u32(client.Addr()), u32(server.Addr()), client.Port(), server.Port()}
		if _, dup := e.byTrans[transKey{key.server, s.Trans}]; dup {
			continue
		}
		c := e.conns[key]
		if c == nil {
			c = &ctrlConn{key: key, client: client, server: server, created: now, lastSeen: now, helperDone: true}
			if w, err := netip.ParseAddr(s.WAN); err == nil && w.Is4() {
				c.wan = w
			}
			e.setNATPortLocked(c, s.NATPort)
			c.dirs[0].resetMsg()
			c.dirs[1].resetMsg()
			e.conns[key] = c
		}
		cl := e.addCallLocked(c, s.Orig, s.Trans, now)
		e.cnt.callsOpened--
		cl.state = stateRestored
		if !s.Created.IsZero() {
			cl.created = s.Created
		}
		if s.Peer != nil {
			e.setPeerLocked(cl, *s.Peer)
		}
		n++
	}
	e.dirty = false
	return n, nil
}

// StateHeader implements statefile.Versioned.
func (sf *stateFile) StateHeader() (int, string) { return sf.Version, sf.BootID }
