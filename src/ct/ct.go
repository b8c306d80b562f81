package ct

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
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
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return f, ErrMalformed
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case ctaTupleOrig:
			ad.Nested(func(nad *netlink.AttributeDecoder) error { return parseTuple(nad, &f.Orig) })
		case ctaTupleReply:
			ad.Nested(func(nad *netlink.AttributeDecoder) error { return parseTuple(nad, &f.Reply) })
		case ctaStatus:
			f.Status = ad.Uint32()
		case ctaTimeout:
			f.Timeout = ad.Uint32()
		case ctaMark:
			f.Mark = ad.Uint32()
		case ctaHelp:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					if nad.Type() == ctaHelpName {
						f.Helper = nad.String()
					}
				}
				return nil
			})
		case ctaProtoinfo:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					if nad.Type() == ctaProtoinfoTCP {
						nad.Nested(func(tad *netlink.AttributeDecoder) error {
							for tad.Next() {
								switch tad.Type() {
								case ctaProtoinfoTCPState:
									f.TCPState = tad.Uint8()
								case ctaProtoinfoTCPFlagsOrig, ctaProtoinfoTCPFlagsReply:
									if b := tad.Bytes(); len(b) == 2 {
										f.TCPFlags[tad.Type()-ctaProtoinfoTCPFlagsOrig] = b[0]
									}
								}
							}
							return nil
						})
					}
				}
				return nil
			})
		case ctaCountersOrig:
			ad.Nested(func(nad *netlink.AttributeDecoder) error { return parseCounters(nad, &f.PacketsOrig, &f.BytesOrig) })
		case ctaCountersReply:
			ad.Nested(func(nad *netlink.AttributeDecoder) error { return parseCounters(nad, &f.PacketsReply, &f.BytesReply) })
		}
	}
	if err := ad.Err(); err != nil {
		return Flow{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return f, nil
}

func parseTuple(ad *netlink.AttributeDecoder, t *Tuple) error {
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case ctaTupleIP:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					b := nad.Bytes()
					if len(b) != 4 {
						continue // IPv6 tuples are not ours to show
					}
					a := netip.AddrFrom4([4]byte(b))
					switch nad.Type() {
					case ctaIPv4Src:
						t.Src = a
					case ctaIPv4Dst:
						t.Dst = a
					}
				}
				return nil
			})
		case ctaTupleProto:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				nad.ByteOrder = binary.BigEndian
				for nad.Next() {
					switch nad.Type() {
					case ctaProtoNum:
						t.Proto = nad.Uint8()
					case ctaProtoSrcPort:
						t.SrcPort = nad.Uint16()
					case ctaProtoDstPort:
						t.DstPort = nad.Uint16()
					}
				}
				return nil
			})
		}
	}
	return nil
}

func parseCounters(ad *netlink.AttributeDecoder, pkts, bytes *uint64) error {
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case ctaCountersPackets:
			*pkts = ad.Uint64()
		case ctaCountersBytes:
			*bytes = ad.Uint64()
		}
	}
	return nil
}

// Dump lists the IPv4 conntrack table of the current network namespace.
func Dump() ([]Flow, error) { return dump(nil) }

// DumpNetNS lists the IPv4 conntrack table of the namespace behind fd.
func DumpNetNS(fd int) ([]Flow, error) { return dump(&netlink.Config{NetNS: fd}) }

func dump(cfg *netlink.Config) ([]Flow, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, fmt.Errorf("ct: dial: %w", err)
	}
	defer c.Close()
	// A kernel that does not answer gives an error, not a hang.
	if err := c.SetDeadline(time.Now().Add(netlinkTimeout)); err != nil {
		return nil, fmt.Errorf("ct: %w", err)
	}
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_CTNETLINK<<8 | ipctnlMsgCtGet),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: []byte{unix.AF_INET, unix.NFNETLINK_V0, 0, 0},
	})
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
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
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
		_, err = c.Execute(netlink.Message{
			Header: netlink.Header{
				Type:  netlink.HeaderType(unix.NFNL_SUBSYS_CTNETLINK<<8 | ipctnlMsgCtDelete),
				Flags: netlink.Request | netlink.Acknowledge,
			},
			Data: append([]byte{unix.AF_INET, unix.NFNETLINK_V0, 0, 0}, body...),
		})
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
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.Nested(ctaTupleOrig, func(ae *netlink.AttributeEncoder) error {
		ae.ByteOrder = binary.BigEndian
		ae.Nested(ctaTupleIP, func(ae *netlink.AttributeEncoder) error {
			s, d := t.Src.As4(), t.Dst.As4()
			ae.Bytes(ctaIPv4Src, s[:])
			ae.Bytes(ctaIPv4Dst, d[:])
			return nil
		})
		ae.Nested(ctaTupleProto, func(ae *netlink.AttributeEncoder) error {
			ae.ByteOrder = binary.BigEndian
			ae.Uint8(ctaProtoNum, t.Proto)
			switch t.Proto {
			case unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_GRE:
				ae.Uint16(ctaProtoSrcPort, t.SrcPort)
				ae.Uint16(ctaProtoDstPort, t.DstPort)
			}
			return nil
		})
		return nil
	})
	b, err := ae.Encode()
	if err != nil {
		return nil, fmt.Errorf("ct: encode tuple: %w", err)
	}
	return b, nil
}
