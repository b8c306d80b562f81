// Package kvlog writes the daemon's log: one line per event, in the form
// log/slog's TextHandler writes (time=... level=INFO msg="..." key=value),
// so that the log reads, and greps, the same as it did with slog. It exists
// for size: log/slog costs ~93 KB of the mipsel binary and links
// encoding/json's encoder. The tests compare its lines with slog's.
//
// It does what the daemon uses: four levels, key-value arguments, With and
// a discard logger (a nil *Logger). Not slog's Attr, groups, LogValuer or
// source locations.
package kvlog

import (
	"encoding"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Level is a log level, numbered as slog numbers them.
type Level int

const (
	LevelDebug Level = -4
	LevelInfo  Level = 0
	LevelWarn  Level = 4
	LevelError Level = 8
)

// Logger writes lines of key=value pairs to one writer. A nil *Logger is
// valid and discards everything. Loggers are safe for concurrent use; each
// line goes out in one Write.
type Logger struct {
	out   *sink
	min   Level
	attrs []byte // With's pairs, formatted once
}

// sink is shared by a logger and those With derives from it, so that their
// lines do not interleave.
type sink struct {
	mu sync.Mutex
	w  io.Writer
}

// now is the clock; tests replace it.
var now = time.Now

// New returns a logger writing lines of level min and above to w.
func New(w io.Writer, min Level) *Logger {
	return &Logger{out: &sink{w: w}, min: min}
}

// Discard returns a logger that writes nothing.
func Discard() *Logger { return nil }

// With returns a logger that adds the key-value pairs args to every line,
// after msg and before the line's own pairs (as slog.Logger.With does).
func (l *Logger) With(args ...any) *Logger {
	if l == nil {
		return nil
	}
	return &Logger{out: l.out, min: l.min, attrs: appendPairs(l.attrs[:len(l.attrs):len(l.attrs)], args)}
}

// Enabled reports whether l writes lines of level lv.
func (l *Logger) Enabled(lv Level) bool { return l != nil && lv >= l.min }

func (l *Logger) Debug(msg string, args ...any) { l.log(LevelDebug, "DEBUG", msg, args) }
func (l *Logger) Info(msg string, args ...any)  { l.log(LevelInfo, "INFO", msg, args) }
func (l *Logger) Warn(msg string, args ...any)  { l.log(LevelWarn, "WARN", msg, args) }
func (l *Logger) Error(msg string, args ...any) { l.log(LevelError, "ERROR", msg, args) }

func (l *Logger) log(lv Level, name, msg string, args []any) {
	if !l.Enabled(lv) {
		return
	}
	b := make([]byte, 0, 160)
	b = append(b, "time="...)
	b = appendTime(b, now())
	b = append(b, " level="...)
	b = append(b, name...)
	b = append(b, " msg="...)
	b = appendString(b, msg)
	b = append(b, l.attrs...)
	b = appendPairs(b, args)
	b = append(b, '\n')
	l.out.mu.Lock()
	l.out.w.Write(b)
	l.out.mu.Unlock()
}

// appendPairs formats args as slog does: key, value, key, value...; a
// value without a string key before it gets the key !BADKEY.
func appendPairs(b []byte, args []any) []byte {
	for len(args) > 0 {
		key, ok := args[0].(string)
		v := args[0]
		if !ok || len(args) == 1 {
			key = "!BADKEY"
			args = args[1:]
		} else {
			v = args[1]
			args = args[2:]
		}
		b = append(b, ' ')
		b = appendString(b, key)
		b = append(b, '=')
		b = appendValue(b, v)
	}
	return b
}

// appendValue formats v as slog's TextHandler does: numbers, bools and
// durations bare, times in RFC 3339 with milliseconds, text marshalers
// (netip.Addr...) by their text, byte slices quoted, the rest by fmt's %+v;
// strings quoted only if they need it.
func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case string:
		return appendString(b, x)
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	case int8:
		return strconv.AppendInt(b, int64(x), 10)
	case int16:
		return strconv.AppendInt(b, int64(x), 10)
	case int32:
		return strconv.AppendInt(b, int64(x), 10)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case uint:
		return strconv.AppendUint(b, uint64(x), 10)
	case uint8:
		return strconv.AppendUint(b, uint64(x), 10)
	case uint16:
		return strconv.AppendUint(b, uint64(x), 10)
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10)
	case uint64:
		return strconv.AppendUint(b, x, 10)
	case uintptr:
		return strconv.AppendUint(b, uint64(x), 10)
	case float32:
		return strconv.AppendFloat(b, float64(x), 'g', -1, 64)
	case float64:
		return strconv.AppendFloat(b, x, 'g', -1, 64)
	case bool:
		return strconv.AppendBool(b, x)
	case time.Duration:
		return append(b, x.String()...)
	case time.Time:
		return appendTime(b, x)
	case encoding.TextMarshaler:
		// A nil *netip.Addr or *time.Time would panic in MarshalText: as
		// slog, write <nil>, and !PANIC for any other panic.
		if rv := reflect.ValueOf(x); rv.Kind() == reflect.Pointer && rv.IsNil() {
			return append(b, "<nil>"...)
		}
		t, err := marshalText(x)
		if err != nil {
			return appendString(b, "!ERROR:"+err.Error())
		}
		return appendString(b, string(t))
	case []byte:
		return strconv.AppendQuote(b, string(x))
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8 {
		return strconv.AppendQuote(b, string(rv.Bytes()))
	}
	return appendString(b, fmt.Sprintf("%+v", v))
}

// appendTime writes t as slog does: RFC 3339, milliseconds truncated.
func appendTime(b []byte, t time.Time) []byte {
	return t.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
}

// appendString writes s bare, or Go-quoted if it is empty or has a space,
// '=', '"', a control character or a rune that is not printable (slog's
// rule; a backslash alone stays bare).
func appendString(b []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == '=' || c == '"' {
				return true
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		// strconv.IsPrint is unicode.IsPrint, and no space outside ASCII
		// is printable: slog's IsSpace || !IsPrint, without unicode's tables.
		if r == utf8.RuneError || !strconv.IsPrint(r) {
			return true
		}
		i += n
	}
	return false
}

// marshalText calls MarshalText, turning a panic into the value slog writes.
func marshalText(x encoding.TextMarshaler) (t []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			t, err = []byte(fmt.Sprintf("!PANIC: %v", r)), nil
		}
	}()
	return x.MarshalText()
}
