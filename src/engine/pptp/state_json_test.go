package pptp

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/jsonenc"
)

// TestStateFileJSON: the state file, written with src/jsonenc, is what
// encoding/json would write (and so what older daemons wrote).
func TestStateFileJSON(t *testing.T) {
	peer := uint16(7)
	saved := time.Date(2026, 12, 2, 10, 0, 0, 123456789, time.UTC)
	for _, sf := range []stateFile{
		{},
		{Version: stateVersion, BootID: "b<o>o&t", Saved: saved, Calls: []stateCall{}},
		{Version: stateVersion, BootID: "boot", Saved: saved, Calls: []stateCall{
			{Client: "192.168.1.20:40000", Server: "198.51.100.1:1723", Orig: 1, Trans: 2, Created: saved},
			{Client: "192.168.1.21:40001", Server: "198.51.100.1:1723", WAN: "203.0.113.5", NATPort: 1024, Orig: 3, Trans: 4, Peer: &peer,
				Created: saved.Add(-time.Hour).In(time.FixedZone("", 7200))},
		}},
	} {
		want, errW := json.Marshal(sf)
		got, errG := jsonenc.Marshal(sf)
		if errW != nil || errG != nil || string(got) != string(want) {
			t.Errorf("jsonenc (%v):\n%s\nencoding/json (%v):\n%s", errG, got, errW, want)
		}
	}
}
