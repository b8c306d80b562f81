package config

// memory_limit and gogc are for the init script, which hands them to the
// Go runtime as GOMEMLIMIT and GOGC. It checks them itself and falls back to
// its defaults (20MiB, 50) with a log line, so a typo there must not stop
// the daemon the way an invalid firewall option does: here they are only
// known, not judged.
func runtimeOption(_ *Config, _ []string) string { return "" }

var (
	memoryLimitSetter = runtimeOption
	gogcSetter        = runtimeOption
)
