package config

import "strings"

// memory_limit and gogc are read by the init script, which hands them to
// the Go runtime as GOMEMLIMIT and GOGC; the daemon only checks them, so a
// typo is reported with its line like any other option. (No regexp: it
// would cost the binary 120 KiB.)

func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func memoryLimitSetter(_ *Config, vals []string) string {
	if len(vals) == 1 {
		v := vals[0]
		for _, suffix := range []string{"KiB", "MiB", "GiB", "B"} {
			if n, ok := strings.CutSuffix(v, suffix); ok {
				v = n
				break
			}
		}
		if vals[0] == "off" || digits(v) {
			return ""
		}
	}
	return "is not a size like 20MiB, or off"
}

func gogcSetter(_ *Config, vals []string) string {
	if len(vals) == 1 && (vals[0] == "off" || digits(vals[0])) {
		return ""
	}
	return "is not a percentage like 50, or off"
}
