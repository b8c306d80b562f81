package plan

import (
	"strings"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
)

func TestConfiguredMarkEverywhere(t *testing.T) {
	c := config.Default()
	c.Mode = config.ModeUserspace
	c.Mark, c.MarkMask = 0x00100000, 0x00f00000
	for _, caps := range []Caps{fullCaps, func() Caps { x := fullCaps; x.MapPayload = false; return x }()} {
		p, err := Build(Input{Config: c, Caps: caps, Topology: topo})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Queues) == 0 {
			t.Fatal("no engines: nothing marks")
		}
		text := p.Render()
		if strings.Contains(text, "0x05000000") || strings.Contains(text, "0x0f000000") || strings.Contains(text, "0xf0ffffff") {
			t.Errorf("the default mark is left in the rendered plan:\n%s", text)
		}
		if !strings.Contains(text, "meta mark & 0x00f00000 == 0x00100000") {
			t.Errorf("the configured mark is not matched:\n%s", text)
		}
		if len(rulesWith(p, func(r Rule) bool { return r.SetMark })) > 0 && !strings.Contains(text, "meta mark set meta mark & 0xff0fffff | 0x00100000") {
			t.Errorf("the configured mark is not set:\n%s", text)
		}
		for _, q := range p.Queues {
			if q.Mark != c.Mark || !strings.Contains(q.Describe(p), "mark 0x00100000/0x00f00000") {
				t.Errorf("queue %+v: %s", q, q.Describe(p))
			}
		}
	}
}
