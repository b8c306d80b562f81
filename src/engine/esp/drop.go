package esp

// DropSA removes the SA that client uses towards server with outbound SPI
// spiOut (as status shows it, "0x..."): its inbound packets are no longer
// delivered and its SPIs are free. It reports whether there was one.
func (t *Tracker) DropSA(client, server, spiOut string) bool {
	for _, p := range t.pairs {
		if p.client.String() != client || p.server.String() != server {
			continue
		}
		for i, s := range p.sas {
			if hexSPI(s.out) != spiOut {
				continue
			}
			t.removeSA(s)
			p.sas = append(p.sas[:i], p.sas[i+1:]...)
			t.dirty = true
			t.opt.Log.Info("esp SA dropped by the administrator", "client", client, "server", server,
				"spi_out", spiOut, "spi_in", hexSPI(s.in))
			return true
		}
	}
	return false
}

// DropSession is the daemon's drop_session for the engine: kind "esp" only
// (IKE is plain UDP the kernel NATs).
func (e *Engine) DropSession(kind, client, server, orig string) bool {
	if kind != "esp" {
		return false
	}
	e.mu.Lock()
	ok := e.tr.DropSA(client, server, orig)
	e.mu.Unlock()
	if ok {
		e.syncMaps() // the kernel's elements of the SA go now, not at the next pass
	}
	return ok
}
