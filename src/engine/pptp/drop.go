package pptp

import "strconv"

// DropSession removes the call client has with server under its own Call ID
// orig (status's orig_id): its GRE is no longer translated, so the tunnel's
// inbound traffic stops. It reports whether there was such a call.
func (e *Engine) DropSession(kind, client, server, orig string) bool {
	if kind != "pptp" {
		return false
	}
	id, err := strconv.ParseUint(orig, 10, 16)
	if err != nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.conns {
		for _, cl := range c.calls {
			if cl.client.String() == client && cl.server.String() == server && cl.orig == uint16(id) {
				e.removeCallLocked(cl, "dropped by the administrator")
				return true
			}
		}
	}
	return false
}
