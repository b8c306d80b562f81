package config

import "regexp"

// memory_limit and gogc are read by the init script, which hands them to
// the Go runtime as GOMEMLIMIT and GOGC; the daemon only checks them, so a
// typo is reported with its line like any other option.
var (
	memoryLimitRE = regexp.MustCompile(`^(off|[0-9]+(B|KiB|MiB|GiB)?)$`)
	gogcRE        = regexp.MustCompile(`^(off|[0-9]+)$`)
)

func patternSetter(re *regexp.Regexp, msg string) setter {
	return func(_ *Config, vals []string) string {
		if len(vals) != 1 || !re.MatchString(vals[0]) {
			return msg
		}
		return ""
	}
}

var (
	memoryLimitSetter = patternSetter(memoryLimitRE, "is not a size like 20MiB, or off")
	gogcSetter        = patternSetter(gogcRE, "is not a percentage like 50, or off")
)
