package ct

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/nl"
)

// ctnetlink attribute numbers (uapi linux/netfilter/nfnetlink_conntrack.h).
const (
	ctaTupleOrig     = 1
	ctaTupleReply    = 2
	ctaStatus        = 3
	ctaProtoinfo     = 4
	ctaHelp          = 5
	ctaTimeout       = 7
	ctaMark          = 8
	ctaCountersOrig  = 9
	ctaCountersReply = 10

	ctaTupleIP    = 1
	ctaTupleProto = 2

	ctaIPv4Src = 1
	ctaIPv4Dst = 2

	ctaProtoNum     = 1
	ctaProtoSrcPort = 2 // also the GRE key: nf_conntrack_proto_gre exports keys as ports
	ctaProtoDstPort = 3

	ctaHelpName = 1

	ctaProtoinfoTCP      = 1 // CTA_PROTOINFO_TCP (nested)
	ctaProtoinfoTCPState = 1 // CTA_PROTOINFO_TCP_STATE: u8, enum tcp_conntrack

	ctaProtoinfoTCPFlagsOrig  = 4 // CTA_PROTOINFO_TCP_FLAGS_ORIGINAL: struct nf_ct_tcp_flags
	ctaProtoinfoTCPFlagsReply = 5 // CTA_PROTOINFO_TCP_FLAGS_REPLY

	ctaCountersPackets = 1
	ctaCountersBytes   = 2

	ipctnlMsgCtGet = 1
)

// Status bits (uapi linux/netfilter/nf_conntrack_common.h).
const (
	StatusSeenReply = 1 << 1
	StatusAssured   = 1 << 2
	StatusSrcNAT    = 1 << 4
)

// TCP connection states as conntrack tracks them (enum tcp_conntrack, uapi
// linux/netfilter/nf_conntrack_tcp.h).
const (
	TCPNone        = 0
	TCPSynSent     = 1
	TCPSynRecv     = 2
	TCPEstablished = 3
	TCPFinWait     = 4
	TCPCloseWait   = 5
	TCPLastAck     = 6
	TCPTimeWait    = 7
	TCPClose       = 8
	TCPSynSent2    = 9
)

// Tuple is one direction of a flow. For GRE the ports are the Call IDs
// (keys) the kernel tracks.
type Tuple struct {
	Src, Dst         netip.Addr
	Proto            uint8
	SrcPort, DstPort uint16
}

// Flow is one conntrack entry. Counters are zero unless the kernel counts
// (net.netfilter.nf_conntrack_acct=1, OpenWrt's default).
type Flow struct {
	Orig, Reply Tuple
	Status      uint32
	Timeout     uint32
	Mark        uint32
	Helper      string
	TCPState    uint8 // TCP* (CTA_PROTOINFO_TCP_STATE), TCP entries only
	// TCPFlags are each direction's window-tracking flags
	// (CTA_PROTOINFO_TCP_FLAGS_{ORIGINAL,REPLY}, IP_CT_TCP_FLAG_*).
	TCPFlags                 [2]uint8
	PacketsOrig, BytesOrig   uint64
	PacketsReply, BytesReply uint64
}

// ErrMalformed reports a ctnetlink message that does not parse.
var ErrMalformed = errors.New("ct: malformed conntrack message")

// ParseFlow decodes the attributes of one IPCTNL_MSG_CT_NEW message (the part
// after the 4-byte nfgenmsg header).
func ParseFlow(b []byte) (Flow, error) {
	var f Flow
	var r reader
	err := nl.Walk(b, func(typ uint16, d []byte) error {
		switch typ {
		case ctaTupleOrig:
			return parseTuple(&r, d, &f.Orig)
		case ctaTupleReply:
			return parseTuple(&r, d, &f.Reply)
		case ctaStatus:
			f.Status = r.u32(d)
		case ctaTimeout:
			f.Timeout = r.u32(d)
		case ctaMark:
			f.Mark = r.u32(d)
		case ctaHelp:
			return nl.Walk(d, func(typ uint16, d []byte) error {
				if typ == ctaHelpName {
					f.Helper = nl.String(d)
				}
				return nil
			})
		case ctaProtoinfo:
			return nl.Walk(d, func(typ uint16, d []byte) error {
				if typ != ctaProtoinfoTCP {
					return nil
				}
				return nl.Walk(d, func(typ uint16, d []byte) error {
					switch typ {
					case ctaProtoinfoTCPState:
						f.TCPState = uint8(r.uint(d, 1))
					case ctaProtoinfoTCPFlagsOrig, ctaProtoinfoTCPFlagsReply:
						if len(d) == 2 {
							f.TCPFlags[typ-ctaProtoinfoTCPFlagsOrig] = d[0]
						}
					}
					return nil
				})
			})
		case ctaCountersOrig:
			return parseCounters(&r, d, &f.PacketsOrig, &f.BytesOrig)
		case ctaCountersReply:
			return parseCounters(&r, d, &f.PacketsReply, &f.BytesReply)
		}
		return nil
	})
	if err == nil {
		err = r.err
	}
	if err != nil {
		return Flow{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return f, nil
}

// reader reads big-endian integers of the expected size and remembers the
// first that has another.
type reader struct{ err error }

func (r *reader) uint(d []byte, size int) uint64 {
	v, ok := nl.Uint(d)
	if !ok || len(d) != size {
		if r.err == nil {
			r.err = fmt.Errorf("a %d-byte attribute where %d bytes belong", len(d), size)
		}
		return 0
	}
	return v
}

func (r *reader) u32(d []byte) uint32 { return uint32(r.uint(d, 4)) }

func parseTuple(r *reader, b []byte, t *Tuple) error {
	return nl.Walk(b, func(typ uint16, d []byte) error {
		switch typ {
		case ctaTupleIP:
			return nl.Walk(d, func(typ uint16, d []byte) error {
				if len(d) != 4 {
					return nil // IPv6 tuples are not ours to show
				}
				a := netip.AddrFrom4([4]byte(d))
				switch typ {
				case ctaIPv4Src:
					t.Src = a
				case ctaIPv4Dst:
					t.Dst = a
				}
				return nil
			})
		case ctaTupleProto:
			return nl.Walk(d, func(typ uint16, d []byte) error {
				switch typ {
				case ctaProtoNum:
					t.Proto = uint8(r.uint(d, 1))
				case ctaProtoSrcPort:
					t.SrcPort = uint16(r.uint(d, 2))
				case ctaProtoDstPort:
					t.DstPort = uint16(r.uint(d, 2))
				}
				return nil
			})
		}
		return nil
	})
}

func parseCounters(r *reader, b []byte, pkts, bytes *uint64) error {
	return nl.Walk(b, func(typ uint16, d []byte) error {
		switch typ {
		case ctaCountersPackets:
			*pkts = r.uint(d, 8)
		case ctaCountersBytes:
			*bytes = r.uint(d, 8)
		}
		return nil
	})
}

// Dump lists the IPv4 conntrack table of the current network namespace.
func Dump() ([]Flow, error) { return dump(0) }

// DumpNetNS lists the IPv4 conntrack table of the namespace behind fd.
func DumpNetNS(fd int) ([]Flow, error) { return dump(fd) }

func dump(netns int) ([]Flow, error) {
	c, err := nl.Dial(unix.NETLINK_NETFILTER, netns)
	if err != nil {
		return nil, fmt.Errorf("ct: dial: %w", err)
	}
	defer c.Close()
	// A kernel that does not answer gives an error, not a hang.
	if err := c.SetDeadline(time.Now().Add(netlinkTimeout)); err != nil {
		return nil, fmt.Errorf("ct: %w", err)
	}
	msgs, err := c.Execute(nl.Message{Type: unix.NFNL_SUBSYS_CTNETLINK<<8 | ipctnlMsgCtGet, Flags: nl.Request | nl.Dump,
		Data: []byte{unix.AF_INET, unix.NFNETLINK_V0, 0, 0}})
	if err != nil {
		return nil, fmt.Errorf("ct: dump: %w", err)
	}
	flows := make([]Flow, 0, len(msgs))
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		f, err := ParseFlow(m.Data[4:])
		if err != nil {
			return nil, err
		}
		flows = append(flows, f)
	}
	return flows, nil
}

const ipctnlMsgCtDelete = 2

// netlinkTimeout bounds one conntrack dump or one flush of entries.
const netlinkTimeout = 10 * time.Second

// DeleteMatching deletes the conntrack entries (current namespace) for which
// match is true and returns how many it deleted. An entry that disappears
// between dump and delete is not an error.
func DeleteMatching(match func(Flow) bool) (int, error) {
	flows, err := Dump()
	if err != nil {
		return 0, err
	}
	c, err := nl.Dial(unix.NETLINK_NETFILTER, 0)
	if err != nil {
		return 0, fmt.Errorf("ct: dial: %w", err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(netlinkTimeout)); err != nil {
		return 0, fmt.Errorf("ct: %w", err)
	}
	n := 0
	for _, f := range flows {
		if !match(f) {
			continue
		}
		body, err := encodeOrigTuple(f.Orig)
		if err != nil {
			return n, err
		}
		_, err = c.Execute(nl.Message{Type: unix.NFNL_SUBSYS_CTNETLINK<<8 | ipctnlMsgCtDelete, Flags: nl.Request | nl.Acknowledge,
			Data: append([]byte{unix.AF_INET, unix.NFNETLINK_V0, 0, 0}, body...)})
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return n, fmt.Errorf("ct: delete %v: %w", f.Orig, err)
		}
		if err == nil {
			n++
		}
	}
	return n, nil
}

// encodeOrigTuple is the CTA_TUPLE_ORIG attribute that names an entry.
func encodeOrigTuple(t Tuple) ([]byte, error) {
	if !t.Src.Is4() || !t.Dst.Is4() {
		return nil, fmt.Errorf("ct: encode tuple: only IPv4: %v -> %v", t.Src, t.Dst)
	}
	s, d := t.Src.As4(), t.Dst.As4()
	proto := nl.Attrs(nil).U8(ctaProtoNum, t.Proto)
	switch t.Proto {
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_GRE:
		proto = proto.U16(ctaProtoSrcPort, t.SrcPort).U16(ctaProtoDstPort, t.DstPort)
	}
	return nl.Attrs(nil).Nest(ctaTupleOrig, nl.Attrs(nil).
		Nest(ctaTupleIP, nl.Attrs(nil).Add(ctaIPv4Src, s[:]).Add(ctaIPv4Dst, d[:])).
		Nest(ctaTupleProto, proto)), nil
}
