package status

import (
	"errors"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
	"github.com/vpn-passthrough/vpn-passthrough/src/uci"
)

// Problem is one error or warning about a config, located as precisely as
// the parser knows (empty/0 when not).
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Section string `json:"section"`
	Option  string `json:"option"`
	Value   string `json:"value"`
	Message string `json:"message"`
}

// CheckResult is the answer of the check method.
type CheckResult struct {
	Valid    bool      `json:"valid"`
	Errors   []Problem `json:"errors"`
	Warnings []Problem `json:"warnings"`
}

// Check validates a vpn-passthrough config given as UCI text, without
// touching the running state. name is the file name errors carry.
func Check(name string, text []byte) CheckResult {
	r := CheckResult{Errors: []Problem{}, Warnings: []Problem{}}
	_, warns, err := config.Parse(name, text)
	for _, w := range warns {
		r.Warnings = append(r.Warnings, Problem{File: name, Line: w.Line, Section: w.Section, Option: w.Option, Message: w.Msg})
	}
	if err == nil {
		r.Valid = true
		return r
	}
	var ce *config.Error
	var se *uci.SyntaxError
	switch {
	case errors.As(err, &ce):
		r.Errors = append(r.Errors, Problem{File: ce.File, Line: ce.Line, Section: ce.Section, Option: ce.Option, Value: ce.Value, Message: ce.Msg})
	case errors.As(err, &se):
		r.Errors = append(r.Errors, Problem{File: se.File, Line: se.Line, Message: se.Msg})
	default:
		r.Errors = append(r.Errors, Problem{File: name, Message: err.Error()})
	}
	return r
}
