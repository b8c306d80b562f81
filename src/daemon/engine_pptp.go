package daemon

import (
	"errors"
	"log/slog"

	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

func newPPTPEngine(q plan.Queue, l *Loaded, log *slog.Logger) (Engine, error) {
	return nil, errors.New("daemon: no userspace PPTP engine in this build")
}
