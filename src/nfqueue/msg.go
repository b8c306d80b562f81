package nfqueue

import (
	"encoding/binary"
	"errors"
	"time"
)

// Netlink and nfnetlink_queue wire constants. Message and attribute numbers
// are from uapi linux/netfilter/nfnetlink_queue.h; nlmsghdr fields are in host
// byte order, nfnetlink attribute values in network byte order.
const (
	nlmsgHdrLen = 16 // struct nlmsghdr
	nfgenLen    = 4  // struct nfgenmsg
	nlaHdrLen   = 4  // struct nlattr

	nlmsgNoop  = 1 // NLMSG_NOOP
	nlmsgError = 2 // NLMSG_ERROR
	nlmsgDone  = 3 // NLMSG_DONE

	nlmFRequest = 0x1 // NLM_F_REQUEST
	nlmFAck     = 0x4 // NLM_F_ACK

	nfnlSubsysQueue = 3 // NFNL_SUBSYS_QUEUE

	// enum nfqnl_msg_types, as (subsys << 8) | type.
	msgPacket       = nfnlSubsysQueue<<8 | 0 // NFQNL_MSG_PACKET
	msgVerdict      = nfnlSubsysQueue<<8 | 1 // NFQNL_MSG_VERDICT
	msgConfig       = nfnlSubsysQueue<<8 | 2 // NFQNL_MSG_CONFIG
	msgVerdictBatch = nfnlSubsysQueue<<8 | 3 // NFQNL_MSG_VERDICT_BATCH

	// enum nfqnl_attr_type
	attrPacketHdr  = 1  // NFQA_PACKET_HDR: be32 id, be16 hw_protocol, u8 hook
	attrVerdictHdr = 2  // NFQA_VERDICT_HDR: be32 verdict, be32 id
	attrMark       = 3  // NFQA_MARK: be32
	attrTimestamp  = 4  // NFQA_TIMESTAMP: be64 seconds, be64 microseconds
	attrInDev      = 5  // NFQA_IFINDEX_INDEV: be32
	attrOutDev     = 6  // NFQA_IFINDEX_OUTDEV: be32
	attrPayload    = 10 // NFQA_PAYLOAD
	attrCT         = 11 // NFQA_CT (nested ctnetlink attributes)
	attrCTInfo     = 12 // NFQA_CT_INFO: be32
	attrCapLen     = 13 // NFQA_CAP_LEN: be32 original length when truncated
	attrSkbInfo    = 14 // NFQA_SKB_INFO: be32 NFQA_SKB_* flags

	// enum nfqnl_attr_config
	cfgCmd      = 1 // NFQA_CFG_CMD: u8 command, u8 pad, be16 pf
	cfgParams   = 2 // NFQA_CFG_PARAMS: be32 copy_range, u8 copy_mode (packed, 5 bytes)
	cfgMaxLen   = 3 // NFQA_CFG_QUEUE_MAXLEN: be32
	cfgMask     = 4 // NFQA_CFG_MASK: be32
	cfgFlags    = 5 // NFQA_CFG_FLAGS: be32
	cmdBind     = 1 // NFQNL_CFG_CMD_BIND
	copyPacket  = 2 // NFQNL_COPY_PACKET
	nlaFNested  = 1 << 15
	nlaTypeMask = 0x3fff

	// Verdicts (uapi linux/netfilter.h).
	nfDrop   = 0
	nfAccept = 1
	nfRepeat = 4

	// Queue flags (NFQA_CFG_F_*).
	flagFailOpen  = 1 << 0
	flagConntrack = 1 << 1
	flagGSO       = 1 << 2
)

// SkbInfo flags (NFQA_SKB_*).
const (
	SkbCsumNotReady    = 1 << 0 // checksum not yet computed (only with the GSO flag)
	SkbGSO             = 1 << 1
	SkbCsumNotVerified = 1 << 2
)

var ne = binary.NativeEndian
var be = binary.BigEndian

// Errors the parser returns. They are sentinels: the receive loop counts them
// without allocating.
var (
	ErrTruncated = errors.New("nfqueue: truncated netlink message")
	ErrNoID      = errors.New("nfqueue: packet message without NFQA_PACKET_HDR")
)

func align4(n int) int { return (n + 3) &^ 3 }

// Verdict is what happens to a packet.
type Verdict uint8

const (
	// Accept lets the packet continue (the default of a fresh Packet).
	Accept Verdict = iota
	// Drop discards it.
	Drop
	// Repeat re-runs the current hook: the packet is queued again. Used
	// internally for packets that arrive before the queue is configured.
	repeat
)

// Packet is one queued packet. The fields above the line are what the kernel
// sent; the handler sets those below it.
type Packet struct {
	ID      uint32 // NFQA_PACKET_HDR packet_id
	HWProto uint16 // EtherType of the packet (0x0800 for IPv4)
	Hook    uint8  // netfilter hook number (0 prerouting, 2 forward, 4 postrouting)
	Mark    uint32 // skb mark (NFQA_MARK; 0 when absent)
	InDev   uint32 // input interface index, 0 if none
	OutDev  uint32 // output interface index, 0 if none (known from forward on)
	CapLen  uint32 // the packet's full length when Data is shorter (truncated copy), else 0
	SkbInfo uint32 // NFQA_SKB_* flags
	CTInfo  uint32 // NFQA_CT_INFO, valid with Config.Conntrack
	// Time is when the packet arrived or was queued (NFQA_TIMESTAMP; zero
	// unless the kernel timestamps packets: EnableTimestamps).
	Time time.Time
	// CT is the raw nested NFQA_CT attribute (ctnetlink attributes) when the
	// queue asked for conntrack information and the kernel gave it.
	CT []byte
	// Data is the packet from its network header on. It points into the
	// queue's receive arena and is valid until the handler returns; the
	// handler may rewrite it in place (and shorten it) and set Modified.
	Data []byte

	// ---- set by the handler ----

	Verdict Verdict
	// Modified sends Data back to the kernel as the new packet.
	Modified bool
	// SetMark replaces the skb mark with NewMark (a whole 32-bit value: the
	// handler merges the bits it does not own from Mark).
	SetMark bool
	NewMark uint32
}

// Truncated reports whether Data holds less than the whole packet. A
// truncated packet must not be sent back modified (the kernel would cut the
// packet to what we send), so the queue drops such a packet if the handler
// tries.
func (p *Packet) Truncated() bool { return p.CapLen != 0 && int(p.CapLen) > len(p.Data) }

// plain reports whether the packet can be covered by a batch verdict.
func (p *Packet) plain() bool { return p.Verdict == Accept && !p.Modified && !p.SetMark }

// reset clears a packet slot for reuse.
func (p *Packet) reset() { *p = Packet{} }

// nlMsg is one netlink message inside a datagram.
type nlMsg struct {
	typ   uint16
	flags uint16
	seq   uint32
	body  []byte // after the nlmsghdr
}

// nextMsg splits the first netlink message off b. ok is false at the end of
// b; err reports a malformed header (the rest of the datagram is unusable).
func nextMsg(b []byte) (m nlMsg, rest []byte, ok bool, err error) {
	if len(b) < nlmsgHdrLen {
		return m, nil, false, nil
	}
	n := int(ne.Uint32(b[0:]))
	if n < nlmsgHdrLen || n > len(b) {
		return m, nil, false, ErrTruncated
	}
	m = nlMsg{typ: ne.Uint16(b[4:]), flags: ne.Uint16(b[6:]), seq: ne.Uint32(b[8:]), body: b[nlmsgHdrLen:n]}
	next := align4(n)
	if next > len(b) {
		next = len(b)
	}
	return m, b[next:], true, nil
}

// nextAttr splits the first attribute off b.
func nextAttr(b []byte) (typ uint16, val, rest []byte, ok bool, err error) {
	if len(b) < nlaHdrLen {
		return 0, nil, nil, false, nil
	}
	n := int(ne.Uint16(b[0:]))
	if n < nlaHdrLen || n > len(b) {
		return 0, nil, nil, false, ErrTruncated
	}
	typ = ne.Uint16(b[2:]) & nlaTypeMask
	val = b[nlaHdrLen:n]
	next := align4(n)
	if next > len(b) {
		next = len(b)
	}
	return typ, val, b[next:], true, nil
}

// parsePacket decodes the body of an NFQNL_MSG_PACKET (nfgenmsg and
// attributes) into p. Unknown attributes are skipped; short known ones are an
// error. It does not allocate: slices in p point into body.
func parsePacket(body []byte, p *Packet) error {
	p.reset()
	if len(body) < nfgenLen {
		return ErrTruncated
	}
	b := body[nfgenLen:]
	haveID := false
	for {
		typ, v, rest, ok, err := nextAttr(b)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		b = rest
		switch typ {
		case attrPacketHdr:
			if len(v) < 7 {
				return ErrTruncated
			}
			p.ID, p.HWProto, p.Hook = be.Uint32(v), be.Uint16(v[4:]), v[6]
			haveID = true
		case attrMark:
			if len(v) < 4 {
				return ErrTruncated
			}
			p.Mark = be.Uint32(v)
		case attrTimestamp:
			if len(v) < 16 {
				return ErrTruncated
			}
			p.Time = time.Unix(int64(be.Uint64(v)), int64(be.Uint64(v[8:])%1e6)*1e3)
		case attrInDev:
			if len(v) < 4 {
				return ErrTruncated
			}
			p.InDev = be.Uint32(v)
		case attrOutDev:
			if len(v) < 4 {
				return ErrTruncated
			}
			p.OutDev = be.Uint32(v)
		case attrPayload:
			p.Data = v
		case attrCT:
			p.CT = v
		case attrCTInfo:
			if len(v) < 4 {
				return ErrTruncated
			}
			p.CTInfo = be.Uint32(v)
		case attrCapLen:
			if len(v) < 4 {
				return ErrTruncated
			}
			p.CapLen = be.Uint32(v)
		case attrSkbInfo:
			if len(v) < 4 {
				return ErrTruncated
			}
			p.SkbInfo = be.Uint32(v)
		}
	}
	if !haveID {
		return ErrNoID
	}
	return nil
}

// parseError decodes the errno of an NLMSG_ERROR body (0 is an ACK) and the
// sequence number of the request it answers.
func parseError(body []byte) (errno int32, seq uint32, ok bool) {
	if len(body) < 4+nlmsgHdrLen {
		return 0, 0, false
	}
	return int32(ne.Uint32(body)), ne.Uint32(body[4+8:]), true
}

// ---- building messages; every append function writes into b's spare
// capacity and never allocates when the caller sized b. ----

func putMsgHdr(b []byte, typ uint16, flags uint16, seq uint32, queue uint16, family uint8) []byte {
	var h [nlmsgHdrLen + nfgenLen]byte
	// Length is patched by endMsg.
	ne.PutUint16(h[4:], typ)
	ne.PutUint16(h[6:], flags)
	ne.PutUint32(h[8:], seq)
	h[16] = family
	h[17] = 0 // NFNETLINK_V0
	be.PutUint16(h[18:], queue)
	return append(b, h[:]...)
}

// endMsg patches the length of the message that starts at start.
func endMsg(b []byte, start int) []byte {
	ne.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

func putAttr(b []byte, typ uint16, val []byte) []byte {
	var h [nlaHdrLen]byte
	ne.PutUint16(h[0:], uint16(nlaHdrLen+len(val)))
	ne.PutUint16(h[2:], typ)
	b = append(b, h[:]...)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func putAttrU32(b []byte, typ uint16, v uint32) []byte {
	var x [4]byte
	be.PutUint32(x[:], v)
	return putAttr(b, typ, x[:])
}

// verdictSize is the room appendVerdict needs for a payload of n bytes.
func verdictSize(n int) int {
	return nlmsgHdrLen + nfgenLen + (nlaHdrLen + 8) + (nlaHdrLen + 4) + nlaHdrLen + align4(n)
}

// appendVerdict appends an NFQNL_MSG_VERDICT for one packet.
func appendVerdict(b []byte, queue uint16, id, verdict uint32, mark *uint32, payload []byte) []byte {
	start := len(b)
	b = putMsgHdr(b, msgVerdict, nlmFRequest, 0, queue, 0)
	var vh [8]byte
	be.PutUint32(vh[0:], verdict)
	be.PutUint32(vh[4:], id)
	b = putAttr(b, attrVerdictHdr, vh[:])
	if mark != nil {
		b = putAttrU32(b, attrMark, *mark)
	}
	if payload != nil {
		b = putAttr(b, attrPayload, payload)
	}
	return endMsg(b, start)
}

// appendBatchVerdict appends an NFQNL_MSG_VERDICT_BATCH: verdict for every
// packet still queued whose id is not after id.
func appendBatchVerdict(b []byte, queue uint16, id, verdict uint32) []byte {
	start := len(b)
	b = putMsgHdr(b, msgVerdictBatch, nlmFRequest, 0, queue, 0)
	var vh [8]byte
	be.PutUint32(vh[0:], verdict)
	be.PutUint32(vh[4:], id)
	b = putAttr(b, attrVerdictHdr, vh[:])
	return endMsg(b, start)
}

// configMsg builds the NFQNL_MSG_CONFIG that binds the queue and sets copy
// mode, copy range and queue length, with NLM_F_ACK.
func configMsg(queue uint16, seq uint32, copyRange, maxLen uint32) []byte {
	b := make([]byte, 0, 64)
	b = putMsgHdr(b, msgConfig, nlmFRequest|nlmFAck, seq, queue, 0) // AF_UNSPEC
	b = putAttr(b, cfgCmd, []byte{cmdBind, 0, 0, 0})
	var params [5]byte
	be.PutUint32(params[:], copyRange)
	params[4] = copyPacket
	b = putAttr(b, cfgParams, params[:])
	b = putAttrU32(b, cfgMaxLen, maxLen)
	return endMsg(b, 0)
}

// flagsMsg builds the NFQNL_MSG_CONFIG that sets the queue flags in mask.
func flagsMsg(queue uint16, seq uint32, flags, mask uint32) []byte {
	b := make([]byte, 0, 48)
	b = putMsgHdr(b, msgConfig, nlmFRequest|nlmFAck, seq, queue, 0)
	b = putAttrU32(b, cfgFlags, flags)
	b = putAttrU32(b, cfgMask, mask)
	return endMsg(b, 0)
}
