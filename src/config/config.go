package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/uci"
)

// Mode says which datapath carries a protocol.
type Mode string

const (
	ModeAuto      Mode = "auto"      // kernel helper where the kernel has it, userspace otherwise
	ModeKernel    Mode = "kernel"    // conntrack helpers and NAT in the kernel
	ModeUserspace Mode = "userspace" // NFQUEUE engines in this daemon
)

// ESPMux chooses how raw ESP is carried.
type ESPMux string

const (
	ESPMuxAuto ESPMux = "auto" // userspace multiplexer when NFQUEUE exists
	ESPMuxOn   ESPMux = "on"
	ESPMuxOff  ESPMux = "off" // kernel generic tracking: one raw-ESP client per server
)

// Config is the validated content of /etc/config/vpn-passthrough.
type Config struct {
	Enabled    bool
	Mode       Mode
	LANZones   []string // firewall zones (or network interfaces) on the LAN side
	WANZones   []string
	LANDevices []string // explicit devices; win over zones
	WANDevices []string
	LogBlocked bool
	QueueBase  uint16 // NFQUEUE number of the PPTP engine; ESP uses QueueBase+1
	// Mark under MarkMask is what the userspace engines put on packets they
	// forward (meta mark), for our rules and fw4's include. The default
	// bits are used by no common OpenWrt package (mark.go).
	Mark, MarkMask uint32

	PPTP  PPTP
	L2TP  L2TP
	IPsec IPsec
}

// PPTP is the `config pptp` section.
type PPTP struct {
	Enabled           bool
	MaxCalls          int           // userspace engine: calls in all
	MaxCallsPerClient int           // userspace engine: calls per LAN client
	IdleTimeout       time.Duration // userspace engine: a call without GRE for this long is removed
}

// L2TP is the `config l2tp` section.
type L2TP struct {
	Enabled bool
}

// IPsec is the `config ipsec` section.
type IPsec struct {
	Enabled         bool
	ESPMux          ESPMux
	MaxSAs          int           // ESP multiplexer table size
	MaxSAsPerClient int           // SAs one LAN client may hold; 0: max_sas/4, at least 16
	IdleTimeout     time.Duration // ESP mapping idle expiry
	KeepIKEPort     bool          // keep source port 500 for the first client to a server
}

// Default is the configuration used for absent sections and options. It
// matches files/etc/config/vpn-passthrough.
func Default() Config {
	return Config{
		Enabled:   true,
		Mode:      ModeAuto,
		LANZones:  []string{"lan"},
		WANZones:  []string{"wan"},
		QueueBase: 4200,
		Mark:      DefaultMark,
		MarkMask:  DefaultMarkMask,
		PPTP: PPTP{
			Enabled:           true,
			MaxCalls:          1024,
			MaxCallsPerClient: 16,
			IdleTimeout:       10 * time.Minute,
		},
		L2TP: L2TP{Enabled: true},
		IPsec: IPsec{
			Enabled:     true,
			ESPMux:      ESPMuxAuto,
			MaxSAs:      4096,
			IdleTimeout: 10 * time.Minute,
		},
	}
}

// Warning is a problem that does not refuse the file, such as an unknown
// option. It names the place, like an error does.
type Warning struct {
	Section, Option string
	Line            int
	Msg             string
}

func (w Warning) String() string {
	if w.Line == 0 { // about something absent: no line to point at
		return fmt.Sprintf("section %q: %s", w.Section, w.Msg)
	}
	if w.Option == "" {
		return fmt.Sprintf("line %d: section %q: %s", w.Line, w.Section, w.Msg)
	}
	return fmt.Sprintf("line %d: section %q option %q: %s", w.Line, w.Section, w.Option, w.Msg)
}

// Error is an invalid value. One invalid value refuses the whole file, so the
// daemon keeps the state it applied last.
type Error struct {
	File            string
	Line            int
	Section, Option string
	Value           string
	Msg             string
}

func (e *Error) Error() string {
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Option == "" {
		return fmt.Sprintf("config: %s: section %q: %s", where, e.Section, e.Msg)
	}
	return fmt.Sprintf("config: %s: section %q option %q: %q %s", where, e.Section, e.Option, e.Value, e.Msg)
}

// Parse parses and validates the text of a vpn-passthrough UCI file.
func Parse(name string, data []byte) (Config, []Warning, error) {
	f, err := uci.Parse(name, data)
	if err != nil {
		return Config{}, nil, fmt.Errorf("config: %w", err)
	}
	return FromUCI(f)
}

// option handlers per section type. Each returns an error message for an
// invalid value; the caller adds the place.
type setter func(c *Config, vals []string) string

var sectionOptions = map[string]map[string]setter{
	"globals": {
		"enabled":     boolSetter(func(c *Config) *bool { return &c.Enabled }),
		"mode":        modeSetter,
		"lan_zone":    listSetter(func(c *Config) *[]string { return &c.LANZones }),
		"wan_zone":    listSetter(func(c *Config) *[]string { return &c.WANZones }),
		"lan_device":  listSetter(func(c *Config) *[]string { return &c.LANDevices }),
		"wan_device":  listSetter(func(c *Config) *[]string { return &c.WANDevices }),
		"log_blocked": boolSetter(func(c *Config) *bool { return &c.LogBlocked }),
		"queue_base":  queueBaseSetter,
		"mark":        markSetter(func(c *Config) *uint32 { return &c.Mark }),
		"mark_mask":   markSetter(func(c *Config) *uint32 { return &c.MarkMask }),
		// For the init script (GOMEMLIMIT, GOGC); see runtime.go.
		"memory_limit": memoryLimitSetter,
		"gogc":         gogcSetter,
	},
	"pptp": {
		"enabled":              boolSetter(func(c *Config) *bool { return &c.PPTP.Enabled }),
		"max_calls":            intSetter(1, 65535, func(c *Config) *int { return &c.PPTP.MaxCalls }),
		"max_calls_per_client": intSetter(1, 65535, func(c *Config) *int { return &c.PPTP.MaxCallsPerClient }),
		"idle_timeout":         durationSetter(func(c *Config) *time.Duration { return &c.PPTP.IdleTimeout }),
	},
	"l2tp": {
		"enabled": boolSetter(func(c *Config) *bool { return &c.L2TP.Enabled }),
	},
	"ipsec": {
		"enabled":            boolSetter(func(c *Config) *bool { return &c.IPsec.Enabled }),
		"esp_mux":            espMuxSetter,
		"max_sas":            intSetter(1, 1<<20, func(c *Config) *int { return &c.IPsec.MaxSAs }),
		"max_sas_per_client": intSetter(1, 1<<20, func(c *Config) *int { return &c.IPsec.MaxSAsPerClient }),
		"idle_timeout":       durationSetter(func(c *Config) *time.Duration { return &c.IPsec.IdleTimeout }),
		"keep_ike_port":      boolSetter(func(c *Config) *bool { return &c.IPsec.KeepIKEPort }),
	},
}

// FromUCI validates a parsed file. Sections are matched by type, so both
// `config pptp 'pptp'` and an anonymous `config pptp` work; a repeated type
// is an error because it would be ambiguous which one rules.
func FromUCI(f *uci.File) (Config, []Warning, error) {
	c := Default()
	var warns []Warning
	seen := map[string]int{}
	hasEnabled := map[string]bool{}
	for _, s := range f.Sections {
		opts, ok := sectionOptions[s.Type]
		if !ok {
			warns = append(warns, Warning{Section: sectionLabel(s), Line: s.Line, Msg: fmt.Sprintf("unknown section type %q ignored", s.Type)})
			continue
		}
		if prev, dup := seen[s.Type]; dup {
			return Config{}, warns, &Error{File: f.Name, Line: s.Line, Section: sectionLabel(s),
				Msg: fmt.Sprintf("second section of type %q (the first is on line %d)", s.Type, prev)}
		}
		seen[s.Type] = s.Line
		for _, o := range s.Options {
			if o.Name == "enabled" {
				hasEnabled[s.Type] = true
			}
			set, ok := opts[o.Name]
			if !ok {
				warns = append(warns, Warning{Section: sectionLabel(s), Option: o.Name, Line: o.Line,
					Msg: "unknown option ignored (known: " + knownOptions(opts) + ")"})
				continue
			}
			if msg := set(&c, o.Values); msg != "" {
				return Config{}, warns, &Error{File: f.Name, Line: o.Line, Section: sectionLabel(s),
					Option: o.Name, Value: strings.Join(o.Values, " "), Msg: msg}
			}
		}
	}
	if msg := checkMark(c.Mark, c.MarkMask); msg != "" {
		return Config{}, warns, &Error{File: f.Name, Line: seen["globals"], Section: "globals", Option: "mark",
			Value: fmt.Sprintf("0x%08x/0x%08x", c.Mark, c.MarkMask), Msg: msg}
	}
	warns = append(warns, markWarnings(c.MarkMask, seen["globals"])...)
	return c, append(warns, missing(&c, seen, hasEnabled)...), nil
}

// missing handles absent sections and absent `enabled` options. A file cut
// short (a failed write, a full flash) loses its last sections first, so
// the rule is: what is not written down is off. A protocol without its
// section, or without `option enabled`, is blocked, never passed; an empty
// file therefore blocks every protocol (globals' defaults: enabled, mode
// auto, zones lan and wan). Each case is a warning that names the section.
func missing(c *Config, seen map[string]int, hasEnabled map[string]bool) []Warning {
	var warns []Warning
	if _, ok := seen["globals"]; !ok {
		warns = append(warns, Warning{Section: "globals", Msg: "no globals section: built-in defaults used " +
			"(enabled '1', mode 'auto', lan_zone 'lan', wan_zone 'wan')"})
	}
	for _, p := range []struct {
		typ string
		on  *bool
	}{{"pptp", &c.PPTP.Enabled}, {"l2tp", &c.L2TP.Enabled}, {"ipsec", &c.IPsec.Enabled}} {
		line, ok := seen[p.typ]
		switch {
		case !ok:
			*p.on = false
			warns = append(warns, Warning{Section: p.typ, Msg: fmt.Sprintf("no %s section: %s is blocked "+
				"(a missing section never switches a protocol on); add `config %s '%s'` with `option enabled '1'` to pass it",
				p.typ, p.typ, p.typ, p.typ)})
		case !hasEnabled[p.typ]:
			*p.on = false
			warns = append(warns, Warning{Section: p.typ, Line: line, Msg: fmt.Sprintf("no option enabled: %s is blocked "+
				"(a missing option never switches a protocol on); add `option enabled '1'` to pass it", p.typ)})
		}
	}
	return warns
}

func sectionLabel(s *uci.Section) string {
	if s.Name != "" {
		return s.Name
	}
	return "@" + s.Type
}

func knownOptions(opts map[string]setter) string {
	names := make([]string, 0, len(opts))
	for n := range opts {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func single(vals []string) (string, string) {
	if len(vals) != 1 {
		return "", "must be a single value, not a list"
	}
	return vals[0], ""
}

// ParseBool accepts the spellings libuci users write (as OpenWrt's
// config_get_bool does).
func ParseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "1", "on", "true", "yes", "enabled":
		return true, true
	case "0", "off", "false", "no", "disabled":
		return false, true
	}
	return false, false
}

func boolSetter(field func(*Config) *bool) setter {
	return func(c *Config, vals []string) string {
		v, msg := single(vals)
		if msg != "" {
			return msg
		}
		b, ok := ParseBool(v)
		if !ok {
			return "is not a boolean (use 1/0, on/off, true/false, yes/no)"
		}
		*field(c) = b
		return ""
	}
}

func intSetter(min, max int, field func(*Config) *int) setter {
	return func(c *Config, vals []string) string {
		v, msg := single(vals)
		if msg != "" {
			return msg
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return "is not a whole number"
		}
		if n < min || n > max {
			return fmt.Sprintf("is out of range %d..%d", min, max)
		}
		*field(c) = n
		return ""
	}
}

// durationSetter takes seconds (UCI convention) or a Go duration ("90s", "10m").
func durationSetter(field func(*Config) *time.Duration) setter {
	return func(c *Config, vals []string) string {
		v, msg := single(vals)
		if msg != "" {
			return msg
		}
		var d time.Duration
		if n, err := strconv.Atoi(v); err == nil {
			d = time.Duration(n) * time.Second
		} else if d, err = time.ParseDuration(v); err != nil {
			return "is not a duration (seconds, or like 90s, 10m)"
		}
		if d < time.Second || d > 24*time.Hour {
			return "is out of range 1s..24h"
		}
		*field(c) = d
		return ""
	}
}

func listSetter(field func(*Config) *[]string) setter {
	return func(c *Config, vals []string) string {
		var out []string
		for _, v := range vals {
			// UCI users often write `option lan_zone 'lan guest'`.
			for _, w := range strings.Fields(v) {
				if !validIfname(w) {
					return fmt.Sprintf("contains %q, which is not a valid zone, network or device name", w)
				}
				out = append(out, w)
			}
		}
		if len(out) == 0 {
			return "is empty"
		}
		*field(c) = out
		return ""
	}
}

// validIfname follows the kernel's rule for device names (dev_valid_name),
// which also covers zone and network names.
func validIfname(s string) bool {
	if s == "" || len(s) >= 16 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if r == '/' || r == ':' || r <= ' ' || r > '~' {
			return false
		}
	}
	return true
}

func modeSetter(c *Config, vals []string) string {
	v, msg := single(vals)
	if msg != "" {
		return msg
	}
	switch m := Mode(v); m {
	case ModeAuto, ModeKernel, ModeUserspace:
		c.Mode = m
		return ""
	}
	return "is not a mode (use auto, kernel or userspace)"
}

func espMuxSetter(c *Config, vals []string) string {
	v, msg := single(vals)
	if msg != "" {
		return msg
	}
	if b, ok := ParseBool(v); ok {
		if b {
			c.IPsec.ESPMux = ESPMuxOn
		} else {
			c.IPsec.ESPMux = ESPMuxOff
		}
		return ""
	}
	if v == string(ESPMuxAuto) {
		c.IPsec.ESPMux = ESPMuxAuto
		return ""
	}
	return "is not auto, on or off"
}

func queueBaseSetter(c *Config, vals []string) string {
	v, msg := single(vals)
	if msg != "" {
		return msg
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 65534 {
		// 65535 is a queue number, but the ESP engine takes queue_base+1.
		return "is not a queue number 0..65534 (the ESP engine uses queue_base+1)"
	}
	c.QueueBase = uint16(n)
	return ""
}
