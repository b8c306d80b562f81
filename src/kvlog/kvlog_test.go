package kvlog

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

var clock = time.Date(2026, 12, 2, 10, 4, 5, 678999999, time.FixedZone("", -5*3600))

// pair returns a kvlog and a slog logger that write to their own buffers,
// at level min, with the same clock.
func pair(min Level) (*Logger, *bytes.Buffer, *slog.Logger, *bytes.Buffer) {
	now = func() time.Time { return clock }
	var a, b bytes.Buffer
	h := slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.Level(min), ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			a.Value = slog.TimeValue(clock)
		}
		return a
	}})
	return New(&a, min), &a, slog.New(h), &b
}

type stringer struct{ s string }

func (s stringer) String() string { return "str:" + s.s }

type bytesNamed []byte

// panicky is a text marshaler that panics: slog writes !PANIC.
type panicky struct{}

func (panicky) MarshalText() ([]byte, error) { panic("no text") }

// values has one of each kind of value the daemon logs, and the awkward ones.
var values = []any{
	"plain", "", "two words", "a=b", `q"uote`, `back\slash`, "tab\there", "nl\n", "\x00", "\x7f", "é", "\u00a0", "\u2028",
	"\ufffd", "\xff", "日本", "\u200b", "emoji😀", 0, -12, int8(-1), int16(300), int32(-7), int64(1) << 62, uint(3), uint8(255),
	uint16(1723), uint32(0xdeadbeef), uint64(1) << 63, uintptr(9), 1.5, float32(0.1), 1e21, true, false,
	1500 * time.Millisecond, time.Duration(0), clock, time.Time{}, errors.New("boom: it failed"), fmt.Errorf("wrapped: %w", errors.New("x")),
	nil, netip.MustParseAddr("192.0.2.1"), netip.Addr{}, netip.MustParseAddrPort("[2001:db8::1]:500"), []string{"pptp", "ipsec"},
	[]byte("by tes"), bytesNamed("n"), stringer{"x y"}, &stringer{"p"}, map[string]int{"a": 1}, struct{ A, B int }{1, 2}, [2]int{1, 2},
	(*netip.Addr)(nil), (*time.Time)(nil), panicky{},
}

func TestSameAsSlog(t *testing.T) {
	for _, lv := range []Level{LevelDebug, LevelInfo, LevelWarn, LevelError} {
		k, kb, s, sb := pair(lv)
		for i, v := range values {
			k.Debug("debug", "v", v)
			s.Debug("debug", "v", v)
			k.Info(fmt.Sprint("msg ", i), "v", v, "i", i)
			s.Info(fmt.Sprint("msg ", i), "v", v, "i", i)
			k.Warn(fmt.Sprint(v), fmt.Sprint(v), v)
			s.Warn(fmt.Sprint(v), fmt.Sprint(v), v)
			k.Error("odd", v)
			s.Error("odd", v)
		}
		bad := []any{1, 2, "last"} // a slice: vet checks literal slog arguments
		k.Info("bad keys", bad...)
		s.Info("bad keys", bad...)
		kw, sw := k.With("engine", "esp", "n", 2), s.With("engine", "esp", "n", 2)
		kw.With("frontend", "ubus").Warn("with", "err", errors.New("e"))
		sw.With("frontend", "ubus").Warn("with", "err", errors.New("e"))
		kw.Info("with again")
		sw.Info("with again")
		if kb.String() != sb.String() {
			kl, sl := strings.Split(kb.String(), "\n"), strings.Split(sb.String(), "\n")
			for i := range min(len(kl), len(sl)) {
				if kl[i] != sl[i] {
					t.Fatalf("level %d, line %d differs from slog's:\n got %s\nwant %s", lv, i, kl[i], sl[i])
				}
			}
			t.Fatalf("level %d: %d lines, slog wrote %d", lv, len(kl), len(sl))
		}
		if lv == LevelInfo && !strings.Contains(kb.String(), `time=2026-12-02T10:04:05.678-05:00 level=INFO msg="msg 0" v=plain i=0`) {
			t.Errorf("unexpected lines:\n%s", kb)
		}
	}
}

// FuzzSameAsSlog: any message, key and value strings are written as slog
// writes them.
func FuzzSameAsSlog(f *testing.F) {
	for _, v := range values {
		if s, ok := v.(string); ok {
			f.Add(s, s, s)
		}
	}
	f.Fuzz(func(t *testing.T, msg, key, val string) {
		k, kb, s, sb := pair(LevelInfo)
		k.With(key, val).Info(msg, key, val, "n", len(val))
		s.With(key, val).Info(msg, key, val, "n", len(val))
		if kb.String() != sb.String() {
			t.Fatalf("differs from slog's:\n got %s\nwant %s", kb, sb)
		}
	})
}

func TestDiscard(t *testing.T) {
	var l *Logger
	l.With("a", 1).Error("nothing")
	Discard().Info("nothing")
	if l.Enabled(LevelError) {
		t.Error("a nil logger is enabled")
	}
}

// Lines of concurrent loggers, With-derived ones too, do not interleave.
func TestConcurrent(t *testing.T) {
	var b bytes.Buffer
	l := New(&b, LevelInfo)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := l.With("g", i)
			for j := range 100 {
				w.Info("line", "j", j)
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 800 {
		t.Fatalf("%d lines", len(lines))
	}
	for _, ln := range lines {
		if !strings.HasPrefix(ln, "time=") || !strings.Contains(ln, " level=INFO msg=line g=") {
			t.Fatalf("mangled line %q", ln)
		}
	}
}
