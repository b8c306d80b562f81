package config

import (
	"fmt"
	"strconv"
	"strings"
)

// The engines' packet mark. Bits other OpenWrt packages use by default, so
// the default stays clear of them (checked against their sources):
//
//   - pbr: fw_mask 0x00ff0000 (its marks 0x00010000 and up);
//   - mwan3: mmx_mask 0x00003f00;
//   - sqm-scripts: IPT_MASK 0x000000ff (ingress classification);
//   - qosify and dscpclassify: the low 8 bits, of the conntrack mark;
//   - nlbwmon: reads conntrack, sets no mark.
//
// 0x05000000 under 0x0f000000 uses bits 24-27, which none of them touches.
// The mark used to be 0x00560000/0x00ff0000: exactly pbr's default mask.
const (
	DefaultMark     uint32 = 0x05000000
	DefaultMarkMask uint32 = 0x0f000000
)

// knownMasks are the default masks of common packages, for a warning when
// the configured mask overlaps one.
var knownMasks = []struct {
	pkg  string
	mask uint32
}{
	{"pbr (fw_mask)", 0x00ff0000},
	{"mwan3 (mmx_mask)", 0x00003f00},
	{"sqm-scripts (IPT_MASK)", 0x000000ff},
}

func markSetter(field func(*Config) *uint32) setter {
	return func(c *Config, vals []string) string {
		v, msg := single(vals)
		if msg != "" {
			return msg
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(v), "0x"), 16, 32)
		if err != nil {
			return "is not a 32-bit hexadecimal number (like 0x05000000)"
		}
		*field(c) = uint32(n)
		return ""
	}
}

// checkMark refuses a mark that cannot work: an empty mask, a mark of 0
// (every unmarked packet would match) or a mark outside its mask.
func checkMark(mark, mask uint32) string {
	switch {
	case mask == 0:
		return "mark_mask is 0: the engines' packets could not be told apart"
	case mark&mask == 0:
		return "mark is 0 under mark_mask: every unmarked packet would look like the engines'"
	case mark&^mask != 0:
		return "mark has bits outside mark_mask"
	}
	return ""
}

func markWarnings(mask uint32, line int) []Warning {
	var warns []Warning
	for _, k := range knownMasks {
		if mask&k.mask != 0 {
			warns = append(warns, Warning{Section: "globals", Option: "mark_mask", Line: line,
				Msg: fmt.Sprintf("0x%08x overlaps the default mask of %s, 0x%08x: if that package is installed, each can break the other", mask, k.pkg, k.mask)})
		}
	}
	return warns
}
