package pptp

import (
	"encoding/binary"

	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

// Directions of a control connection. The LAN client is the PNS (it sends
// Outgoing-Call-Request), the WAN server the PAC (RFC 2637 section 1.2).
const (
	dirOut = 0 // client -> server
	dirIn  = 1 // server -> client
)

// fieldKind says how a Call-ID field is rewritten.
type fieldKind uint8

const (
	fieldNone  fieldKind = iota
	fieldAlloc           // client's own Call ID in a call-opening message: allocate a translation
	fieldOwn             // client's own Call ID in a later message: original -> translated
	fieldPeer            // client's Call ID as the server echoes it: translated -> original
)

// rewriteField returns the Call-ID field of a message that this engine must
// rewrite, by direction and type, and its offset in the message:
//
//	out Outgoing-Call-Request  Call ID          allocate (2.7)
//	out Incoming-Call-Reply    Call ID          allocate (2.10, the PNS answers the PAC's ICRQ)
//	out Call-Clear-Request     Call ID          own      (2.12)
//	in  Outgoing-Call-Reply    Peer's Call ID   peer     (2.8)
//	in  Incoming-Call-Connected Peer's Call ID  peer     (2.11)
//	in  WAN-Error-Notify       Peer's Call ID   peer     (2.14)
//	in  Set-Link-Info          Peer's Call ID   peer     (2.15; RFC: PNS->PAC, but PACs send it too)
//
// Everything else carries no Call ID of the client: the server's own Call ID
// (OCRP/ICRQ Call ID, Call-Disconnect-Notify, an outbound Set-Link-Info's
// Peer's Call ID) and the session messages.
func rewriteField(d int, t packet.PPTPCtrlType) (fieldKind, int) {
	if d == dirOut {
		switch t {
		case packet.PPTPOutgoingCallRequest, packet.PPTPIncomingCallReply:
			return fieldAlloc, t.CallIDOffset()
		case packet.PPTPCallClearRequest:
			return fieldOwn, t.CallIDOffset()
		}
		return fieldNone, 0
	}
	switch t {
	case packet.PPTPOutgoingCallReply, packet.PPTPIncomingCallConn, packet.PPTPWANErrorNotify, packet.PPTPSetLinkInfo:
		return fieldPeer, t.PeerCallIDOffset()
	}
	return fieldNone, 0
}

// histLen is how many rewritten bytes a direction remembers for
// retransmissions. A rewrite touches at most two bytes and control messages
// that carry Call IDs are rare, so this covers far more than a TCP window of
// control traffic.
const histLen = 32

// byteRewrite is one byte the engine changed on the wire.
type byteRewrite struct {
	seq      uint32
	old, new byte
}

// stream is one direction of a control connection: where the engine is in
// the byte stream, the message being read, and recent rewrites.
type stream struct {
	synced bool   // next is meaningful and msg is at a message boundary
	next   uint32 // sequence number of the next new byte
	fin    bool   // a FIN was seen
	gaps   uint8  // consecutive out-of-order segments dropped

	msg    [packet.PPTPMaxLen]byte // ORIGINAL bytes of the current message
	have   int                     // bytes of msg held
	need   int                     // its Length once validated, else 0
	skip   int                     // bytes still to pass over (a message we do not interpret)
	kind   fieldKind               // rewrite field of the current message
	foff   int                     // its offset
	newHi  int16                   // high byte written while the low one was unknown, or -1
	newVal int32                   // the field's new value once decided, or -1

	hist  [histLen]byteRewrite
	histN int // total rewrites recorded (hist is a ring)
}

func (s *stream) resetMsg() {
	s.have, s.need, s.skip, s.kind, s.foff, s.newHi, s.newVal = 0, 0, 0, fieldNone, 0, -1, -1
}

// sync starts interpreting at sequence number seq, a message boundary.
func (s *stream) sync(seq uint32) {
	s.synced, s.next, s.gaps = true, seq, 0
	s.resetMsg()
}

func (s *stream) record(seq uint32, old, new byte) {
	s.hist[s.histN%histLen] = byteRewrite{seq, old, new}
	s.histN++
}

// replay re-applies recorded rewrites to a retransmitted part of the stream:
// data holds the bytes from sequence number seq on, at offset off of seg.
func (s *stream) replay(seg packet.TCP, off int, seq uint32, data []byte) int {
	n := 0
	for i := 0; i < histLen && i < s.histN; i++ {
		r := s.hist[i]
		rel := int(int32(r.seq - seq))
		if rel < 0 || rel >= len(data) {
			continue
		}
		if data[rel] == r.old && r.old != r.new {
			seg.RewriteByte(off+rel, r.new)
			n++
		}
	}
	return n
}

// looksLikeStart reports whether b begins with a complete-looking PPTP
// control message header: the place to (re)synchronise a stream that the
// engine joined in the middle (after a restart).
func looksLikeStart(b []byte) bool {
	n, err := packet.PPTPMessageLen(b)
	if err != nil || len(b) < packet.PPTPHeaderLen {
		return false
	}
	if binary.BigEndian.Uint16(b[2:]) != packet.PPTPMessageTypeControl {
		return false
	}
	t := packet.PPTPCtrlType(binary.BigEndian.Uint16(b[8:]))
	return t.Known() && t.Len() == n
}

// translator is what the stream asks when it meets a Call-ID field. hi is
// the new high byte when only the original high byte is known (the field is
// split across segments); full is the whole new value once both bytes are.
type translator interface {
	// translateHi decides the new high byte from the original high byte.
	translateHi(d int, kind fieldKind, origHi byte) (byte, bool)
	// translate decides the new value from the whole original value;
	// newHi is the high byte already written (-1 if none).
	translate(d int, kind fieldKind, orig uint16, newHi int16) (uint16, bool)
	// message is called with every complete message, original bytes.
	message(d int, m packet.PPTPCtrl)
	// bad is called for a message skipped as malformed, and for a lost
	// framing (lost true).
	bad(d int, lost bool)
}

// feedResult says what happened to a segment's new bytes.
type feedResult uint8

const (
	feedOK     feedResult = iota
	feedRefuse            // the translator refused (limit): drop the segment
)

// feed interprets data, the new bytes of a segment (sequence numbers from
// s.next on), which sit at offset off of seg. It rewrites Call-ID bytes in
// seg as the translator decides and advances s. The caller works on a copy of
// s and keeps it only if the segment is accepted.
func (s *stream) feed(tr translator, d int, seg packet.TCP, off int, data []byte) (rewrites int, res feedResult) {
	i := 0
	for i < len(data) && s.synced {
		if s.skip > 0 {
			n := min(s.skip, len(data)-i)
			s.skip -= n
			i += n
			s.next += uint32(n)
			continue
		}
		target := packet.PPTPHeaderLen
		if s.need > 0 {
			target = s.need
		}
		n := min(target-s.have, len(data)-i)
		first := s.have // message offset of data[i]
		copy(s.msg[s.have:], data[i:i+n])
		s.have += n

		if s.need == 0 && s.have >= 8 {
			l, err := packet.PPTPMessageLen(s.msg[:s.have])
			switch err {
			case nil:
			case packet.ErrMagic:
				// Length may still be sane: skip this message by it.
				if l2 := int(binary.BigEndian.Uint16(s.msg[0:])); l2 >= packet.PPTPHeaderLen && l2 <= packet.PPTPMaxLen {
					tr.bad(d, false)
					s.skipRest(l2, n, &i)
					continue
				}
				fallthrough
			default:
				// No usable length: the framing is lost. Pass the
				// rest through untouched and resynchronise later.
				tr.bad(d, true)
				s.synced = false
				return rewrites, feedOK
			}
			if s.have >= packet.PPTPHeaderLen {
				t := packet.PPTPCtrlType(binary.BigEndian.Uint16(s.msg[8:]))
				if binary.BigEndian.Uint16(s.msg[2:]) != packet.PPTPMessageTypeControl || !t.Known() || t.Len() != l {
					// Unknown or malformed but framed: skip it.
					tr.bad(d, false)
					s.skipRest(l, n, &i)
					continue
				}
				s.need = l
				s.kind, s.foff = rewriteField(d, t)
				if s.need > s.have {
					// Copy the rest of this message's bytes of the
					// segment before looking at fields.
					m := min(s.need-s.have, len(data)-i-n)
					copy(s.msg[s.have:], data[i+n:i+n+m])
					s.have += m
					n += m
				}
			}
		}
		// Rewrite the field bytes that lie in this chunk.
		if s.need > 0 && s.kind != fieldNone {
			for b := s.foff; b <= s.foff+1; b++ {
				if b < first || b >= s.have {
					continue
				}
				var nb byte
				if s.have >= s.foff+2 {
					// Both original bytes known: decide the value
					// once per message.
					if s.newVal < 0 {
						v, ok := tr.translate(d, s.kind, binary.BigEndian.Uint16(s.msg[s.foff:]), s.newHi)
						if !ok {
							return rewrites, feedRefuse
						}
						s.newVal = int32(v)
					}
					nb = byte(s.newVal)
					if b == s.foff {
						nb = byte(s.newVal >> 8)
					}
				} else {
					// The field is split across segments and only its
					// high byte is here.
					hi, ok := tr.translateHi(d, s.kind, s.msg[b])
					if !ok {
						return rewrites, feedRefuse
					}
					s.newHi = int16(hi)
					nb = hi
				}
				pos := off + i + (b - first)
				old := seg[pos]
				if old != nb {
					seg.RewriteByte(pos, nb)
					s.record(s.next+uint32(b-first), old, nb)
					rewrites++
				}
			}
		}
		i += n
		s.next += uint32(n)
		if s.need > 0 && s.have == s.need {
			tr.message(d, packet.PPTPCtrl(s.msg[:s.need]))
			s.resetMsg()
		}
	}
	return rewrites, feedOK
}

// skipRest passes over the rest of a message of length l, of which s.have
// bytes are read; n of them came from the current chunk at *i.
func (s *stream) skipRest(l, n int, i *int) {
	*i += n
	s.next += uint32(n)
	rest := l - s.have
	s.resetMsg()
	if rest > 0 {
		s.skip = rest
	}
}
