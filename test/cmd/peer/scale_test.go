package main

import (
	"testing"
	"time"
)

// TestScaled: $VPNPT_TIME_SCALE stretches the given limits; unset or out
// of range it leaves them alone.
func TestScaled(t *testing.T) {
	for _, c := range []struct {
		env  string
		want time.Duration
	}{{"", 2 * time.Second}, {"4", 8 * time.Second}, {"1.5", 3 * time.Second}, {"0.5", 2 * time.Second}, {"50", 2 * time.Second}, {"x", 2 * time.Second}} {
		t.Setenv("VPNPT_TIME_SCALE", c.env)
		d, e := 2*time.Second, 2*time.Second
		scaled(&d, &e)
		if d != c.want || e != c.want {
			t.Errorf("VPNPT_TIME_SCALE=%q: %v %v, want %v", c.env, d, e, c.want)
		}
	}
}
