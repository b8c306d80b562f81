//go:build go1.24

package jsonenc_test

import (
	"net/netip"
	"testing"
	"time"
)

// zeroer has IsZero on its pointer only.
type zeroer struct{ n int }

func (z *zeroer) IsZero() bool { return z.n == 42 }

// TestOmitZero: ",omitzero" as Go 1.24's encoding/json has it: a field's
// IsZero method (on T or *T, through nil pointers and interfaces) or else
// its zero value.
func TestOmitZero(t *testing.T) {
	type S struct {
		T  time.Time       `json:"t,omitzero"`
		A  netip.Addr      `json:"a,omitzero"`
		I  int             `json:"i,omitzero"`
		P  *time.Time      `json:"p,omitzero"`
		Z  zeroer          `json:"z,omitzero"`
		ZP *zeroer         `json:"zp,omitzero"`
		F  interface{}     `json:"f,omitzero"`
		E  struct{ X int } `json:"e,omitzero"`
		B  []int           `json:"b,omitzero,omitempty"`
	}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	same(t, S{})
	same(t, &S{})
	same(t, S{T: now, A: netip.MustParseAddr("192.0.2.1"), I: 1, P: &now, Z: zeroer{42}, ZP: &zeroer{1}, F: 0,
		E: struct{ X int }{1}, B: []int{}})
	same(t, []S{{Z: zeroer{42}}, {ZP: &zeroer{42}}})
	same(t, map[string]S{"x": {Z: zeroer{42}}})
}
