package status

import "time"

// SchemaVersion is the version of the wire model below. Bump it when a field
// is renamed, removed or changes meaning (see doc.go).
const SchemaVersion = 1

// States of the daemon.
const (
	StateRunning  = "running"  // a config is applied
	StateDisabled = "disabled" // globals.enabled is off: nothing installed
	StateError    = "error"    // no good config applied yet
)

// Status is the daemon's state as every client sees it.
type Status struct {
	Schema       int                `json:"schema"`
	State        string             `json:"state"`
	Version      string             `json:"version"`
	PID          int                `json:"pid"`
	Config       string             `json:"config"`
	AppliedAt    *time.Time         `json:"applied_at"`
	Repairs      int                `json:"repairs"`
	Topology     Topology           `json:"topology"`
	QueueRules   string             `json:"queue_rules,omitempty"`
	Offload      Offload            `json:"offload"`
	Protocols    []Protocol         `json:"protocols"`
	Capabilities []Capability       `json:"capabilities"`
	Sessions     []SessionInfo      `json:"sessions"`
	LastError    string             `json:"last_error"`
	LastErrorAt  *time.Time         `json:"last_error_at"`
	Warnings     []string           `json:"warnings"`
	Counters     map[string]Counter `json:"counters"`
}

// Topology is which devices count as LAN and WAN, and where that came from.
type Topology struct {
	LAN     []string `json:"lan"`
	LANFrom string   `json:"lan_from"`
	WAN     []string `json:"wan"`
	WANFrom string   `json:"wan_from"`
}

// Counter is one nftables counter.
type Counter struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Passed is a protocol's forwarded traffic per direction.
type Passed struct {
	Out Counter `json:"out"`
	In  Counter `json:"in"`
}

// Protocol is one VPN protocol's datapath, why, and its counters.
type Protocol struct {
	Name        string  `json:"proto"`
	Enabled     bool    `json:"enabled"`
	Datapath    string  `json:"datapath"`
	Reason      string  `json:"reason"`
	Limitation  string  `json:"limitation"`
	FlowOffload bool    `json:"flow_offload"`
	Passed      Passed  `json:"passed"`
	Blocked     Counter `json:"blocked"`
}

// Offload is what fw4's flow offloading means for the engines: state
// "off", "exempted" (on, and PPTP control and IKE stay off the flowtable:
// the package's fw4 include is ahead of `flow offload` in fw4's forward
// chain), "not_exempted" (on, and they are offloaded: the userspace engines
// miss them) or "unknown" (on in fw4's config, its chain unreadable); ""
// before the first apply. detail says it in words.
type Offload struct {
	State  string `json:"state"`
	Detail string `json:"detail"`
}

// Capability is one kernel feature, and how the probe found out.
type Capability struct {
	Name      string `json:"name"`
	Present   bool   `json:"present"`
	How       string `json:"how"`
	NeededFor string `json:"needed_for"`
	Package   string `json:"package,omitempty"`
}

// SessionInfo is one tunnel (or one part of it) through the router.
type SessionInfo struct {
	ID          string  `json:"id"`
	Protocol    string  `json:"protocol"`
	Kind        string  `json:"proto"`
	Datapath    string  `json:"datapath"`
	Client      string  `json:"client"`
	Server      string  `json:"server"`
	IDOrig      *string `json:"orig_id"`
	IDTrans     *string `json:"trans_id"`
	IDPeer      *string `json:"peer_id"`
	State       string  `json:"state"`
	PacketsOut  *uint64 `json:"packets_out"`
	BytesOut    *uint64 `json:"bytes_out"`
	PacketsIn   *uint64 `json:"packets_in"`
	BytesIn     *uint64 `json:"bytes_in"`
	AgeSeconds  *int64  `json:"age_s"`
	IdleSeconds *int64  `json:"idle_s"`
	Expires     *int64  `json:"expires_s"`
}

// Event is what ubus notifications and D-Bus signals carry.
type Event struct {
	Name    string       `json:"-"` // EventSessionNew, EventSessionEnd, EventApplied
	Session *SessionInfo `json:"session,omitempty"`
	Trigger string       `json:"trigger,omitempty"`
	Error   string       `json:"error,omitempty"`
}

// Event names.
const (
	EventSessionNew = "session.new"
	EventSessionEnd = "session.end"
	EventApplied    = "applied"
)

// Session is the row an engine reports for one of its tunnels. It is the
// engines' input to Build, not part of the wire model: Build turns it into a
// SessionInfo. Its JSON tags match the wire names, so a test may decode the
// sessions of `status --json` into it (nulls become 0).
type Session struct {
	Proto       string `json:"proto"`  // "pptp", "esp", "ike"
	Client      string `json:"client"` // LAN address
	Server      string `json:"server"`
	OrigID      string `json:"orig_id"` // Call ID or SPI as the client uses it
	TransID     string `json:"trans_id"`
	PeerID      string `json:"peer_id"` // server's Call ID or inbound SPI
	State       string `json:"state"`
	PacketsOut  uint64 `json:"packets_out"`
	BytesOut    uint64 `json:"bytes_out"`
	PacketsIn   uint64 `json:"packets_in"`
	BytesIn     uint64 `json:"bytes_in"`
	AgeSeconds  int64  `json:"age_s"`
	IdleSeconds int64  `json:"idle_s"`
}
