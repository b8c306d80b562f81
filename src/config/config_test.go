package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestDefaultFileMatchesDefault(t *testing.T) {
	data, err := os.ReadFile("../../files/etc/config/vpn-passthrough")
	if err != nil {
		t.Fatal(err)
	}
	c, warns, err := Parse("vpn-passthrough", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("default file has warnings: %v", warns)
	}
	d := Default()
	if c.Mode != d.Mode || !c.Enabled || !c.PPTP.Enabled || !c.L2TP.Enabled || !c.IPsec.Enabled ||
		strings.Join(c.LANZones, ",") != "lan" || strings.Join(c.WANZones, ",") != "wan" {
		t.Errorf("default file gives %+v, want the defaults", c)
	}
}

func TestParseValues(t *testing.T) {
	text := `
config globals 'globals'
	option enabled 'yes'
	option mode 'userspace'
	list lan_device 'br-lan'
	list lan_device 'br-guest'
	option wan_device 'eth1 pppoe-wan'
	option log_blocked 'on'
	option queue_base '300'

config pptp
	option enabled 'false'
	option max_calls '10'
	option max_calls_per_client '2'
	option idle_timeout '90s'

config l2tp
	option enabled '1'

config ipsec 'ipsec'
	option enabled '1'
	option esp_mux 'off'
	option idle_timeout '120'
	option keep_ike_port '1'
	option max_sas_per_client '5'
`
	c, warns, err := Parse("f", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"enabled", c.Enabled},
		{"mode", c.Mode == ModeUserspace},
		{"lan_device list", strings.Join(c.LANDevices, ",") == "br-lan,br-guest"},
		{"wan_device split on spaces", strings.Join(c.WANDevices, ",") == "eth1,pppoe-wan"},
		{"log_blocked", c.LogBlocked},
		{"queue_base", c.QueueBase == 300},
		{"anonymous pptp section", !c.PPTP.Enabled && c.PPTP.MaxCalls == 10 && c.PPTP.MaxCallsPerClient == 2},
		{"duration with unit", c.PPTP.IdleTimeout == 90*time.Second},
		{"duration in seconds", c.IPsec.IdleTimeout == 120*time.Second},
		{"esp_mux off", c.IPsec.ESPMux == ESPMuxOff},
		{"keep_ike_port", c.IPsec.KeepIKEPort},
		{"max_sas_per_client", c.IPsec.MaxSAsPerClient == 5},
		{"l2tp default on", c.L2TP.Enabled},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s: got %+v", ch.name, c)
		}
	}
}

func TestParseErrorsNamePlace(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string // substrings of the error
	}{
		{"bad bool", "config pptp 'pptp'\n\toption enabled 'maybe'\n", []string{`f:2`, `"pptp"`, `"enabled"`, `"maybe"`, "boolean"}},
		{"bad mode", "config globals 'globals'\n\toption mode 'turbo'\n", []string{`f:2`, `"globals"`, `"mode"`, `"turbo"`}},
		{"bad number", "config pptp 'pptp'\n\toption max_calls 'ten'\n", []string{`"max_calls"`, `"ten"`, "number"}},
		{"out of range", "config pptp 'pptp'\n\toption max_calls '0'\n", []string{`"max_calls"`, "range"}},
		{"bad duration", "config ipsec 'ipsec'\n\toption idle_timeout 'soon'\n", []string{`"idle_timeout"`, `"soon"`}},
		{"list for single option", "config globals 'globals'\n\tlist mode 'auto'\n\tlist mode 'kernel'\n", []string{`"mode"`, "single value"}},
		{"bad device name", "config globals 'globals'\n\tlist lan_device 'a/b'\n", []string{`"lan_device"`, `"a/b"`}},
		{"queue number", "config globals 'globals'\n\toption queue_base '70000'\n", []string{`"queue_base"`, `"70000"`}},
		{"duplicate section", "config pptp 'a'\nconfig pptp 'b'\n", []string{`second section of type "pptp"`, "line 1"}},
		{"esp_mux", "config ipsec 'ipsec'\n\toption esp_mux 'sometimes'\n", []string{`"esp_mux"`, `"sometimes"`}},
		{"syntax", "option enabled '1'\n", []string{"f:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse("f", []byte(tt.text))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestValueErrorIsTyped(t *testing.T) {
	_, _, err := Parse("f", []byte("config pptp 'pptp'\n\toption enabled 'x'\n"))
	var ce *Error
	if !errors.As(err, &ce) || ce.Section != "pptp" || ce.Option != "enabled" || ce.Value != "x" || ce.Line != 2 {
		t.Fatalf("got %#v", err)
	}
}

func TestUnknownOptionsWarn(t *testing.T) {
	text := "config globals 'globals'\n\toption colour 'blue'\nconfig frobnicator 'x'\n"
	c, warns, err := Parse("f", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Enabled {
		t.Error("defaults lost")
	}
	if len(warns) != 5 { // colour, frobnicator, and no pptp, l2tp, ipsec
		t.Fatalf("want 5 warnings, got %v", warns)
	}
	if !strings.Contains(warns[0].String(), `"colour"`) || !strings.Contains(warns[0].String(), "line 2") {
		t.Errorf("warning does not name option and line: %s", warns[0])
	}
	if !strings.Contains(warns[1].String(), "frobnicator") {
		t.Errorf("warning does not name section type: %s", warns[1])
	}
}

func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../../files/etc/config/vpn-passthrough"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("config globals 'g'\n\toption mode 'kernel'\n\tlist lan_device 'x'\n"))
	f.Add([]byte("config pptp\n\toption idle_timeout '10m'\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, _, err := Parse("fuzz", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		switch c.Mode {
		case ModeAuto, ModeKernel, ModeUserspace:
		default:
			t.Fatalf("invalid mode accepted: %q", c.Mode)
		}
		if c.PPTP.MaxCalls < 1 || c.IPsec.MaxSAs < 1 || c.PPTP.IdleTimeout < time.Second {
			t.Fatalf("out-of-range value accepted: %+v", c)
		}
	})
}

func TestRuntimeOptions(t *testing.T) {
	for _, c := range []struct {
		opt, val string
		ok       bool
	}{{"memory_limit", "20MiB", true}, {"memory_limit", "off", true}, {"memory_limit", "1048576", true},
		// The init script replaces a bad value by its default: the
		// daemon runs on.
		{"memory_limit", "lots", true}, {"gogc", "50", true}, {"gogc", "off", true}, {"gogc", "-3", true}} {
		text := "config globals 'globals'\n\toption " + c.opt + " '" + c.val + "'\n"
		_, warns, err := Parse("/etc/config/vpn-passthrough", []byte(text))
		if (err == nil) != c.ok {
			t.Errorf("%s %q: err %v, want ok %v", c.opt, c.val, err, c.ok)
		}
		for _, w := range warns {
			if w.Option == c.opt {
				t.Errorf("%s: warning %v: the option is known", c.opt, w)
			}
		}
	}
}

// A file cut short loses its last sections or options first: that never
// switches a protocol on, and each loss is a warning naming the section.
func TestTruncatedFileNeverSwitchesOn(t *testing.T) {
	full := "config globals 'globals'\n\toption enabled '1'\n\nconfig pptp 'pptp'\n\toption enabled '0'\n\n" +
		"config l2tp 'l2tp'\n\toption enabled '1'\n\nconfig ipsec 'ipsec'\n\toption enabled '0'\n"
	want, _, err := Parse("f", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(full, "\n")
	for n := 0; n < len(lines); n++ {
		cut := strings.Join(lines[:n], "")
		c, warns, err := Parse("f", []byte(cut))
		if err != nil {
			t.Fatalf("cut after %d lines: %v", n, err)
		}
		for _, p := range []struct {
			name     string
			got, was bool
		}{{"pptp", c.PPTP.Enabled, want.PPTP.Enabled}, {"l2tp", c.L2TP.Enabled, want.L2TP.Enabled}, {"ipsec", c.IPsec.Enabled, want.IPsec.Enabled}} {
			if p.got && !p.was {
				t.Errorf("cut after %d lines: %s switched on", n, p.name)
			}
		}
		if n < len(lines)-1 && len(warns) == 0 {
			t.Errorf("cut after %d lines: no warning", n)
		}
		for _, w := range warns {
			if !strings.Contains(w.String(), "section \"") {
				t.Errorf("warning names no section: %s", w)
			}
		}
	}
	c, warns, _ := Parse("f", nil)
	if c.PPTP.Enabled || c.L2TP.Enabled || c.IPsec.Enabled || len(warns) != 4 {
		t.Errorf("empty file: %+v, warnings %v; want every protocol blocked and 4 warnings", c, warns)
	}
}

func TestMarkOption(t *testing.T) {
	base := "config globals 'globals'\n\toption mark '%s'\n\toption mark_mask '%s'\n" +
		"config pptp 'pptp'\n\toption enabled '1'\nconfig l2tp 'l2tp'\n\toption enabled '1'\nconfig ipsec 'ipsec'\n\toption enabled '1'\n"
	c, warns, err := Parse("f", []byte(fmt.Sprintf(base, "0x30000000", "0xf0000000")))
	if err != nil || c.Mark != 0x30000000 || c.MarkMask != 0xf0000000 || len(warns) != 0 {
		t.Fatalf("mark option: %#x/%#x, %v, %v", c.Mark, c.MarkMask, warns, err)
	}
	if d := Default(); d.Mark&0x00ff0000 != 0 || d.MarkMask&(0x00ff0000|0x3f00|0xff) != 0 {
		t.Errorf("default mark %#x/%#x overlaps pbr, mwan3 or sqm", d.Mark, d.MarkMask)
	}
	// pbr's default fw_mask: accepted, with a warning naming pbr.
	_, warns, err = Parse("f", []byte(fmt.Sprintf(base, "0x00560000", "0x00ff0000")))
	if err != nil || len(warns) != 1 || !strings.Contains(warns[0].String(), "pbr") {
		t.Errorf("pbr's mask: %v, %v", warns, err)
	}
	for _, bad := range [][2]string{{"0x1", "0x0"}, {"0x0", "0xff"}, {"0x100", "0xff"}, {"zz", "0xff"}} {
		if _, _, err := Parse("f", []byte(fmt.Sprintf(base, bad[0], bad[1]))); err == nil || !strings.Contains(err.Error(), "mark") {
			t.Errorf("mark %s/%s: %v, want an error naming the mark", bad[0], bad[1], err)
		}
	}
}
