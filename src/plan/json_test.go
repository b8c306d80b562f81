package plan

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/jsonenc"
)

// TestJSONAsEncodingJSON: the daemon compares plans by their JSON
// (src/daemon samePlan) and `check --json` prints parts of them, through
// src/jsonenc; for every golden case it writes what encoding/json writes.
func TestJSONAsEncodingJSON(t *testing.T) {
	for _, tc := range Cases() {
		p, err := Build(tc.In)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []any{p, *p, p.Guard(), tc.In.Caps, p.Decisions, p.Offload, p.Topology} {
			want, errW := json.Marshal(v)
			got, errG := jsonenc.Marshal(v)
			if errW != nil || errG != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: %T: jsonenc (%v):\n%s\nencoding/json (%v):\n%s", tc.Name, v, errG, got, errW, want)
			}
		}
	}
}
