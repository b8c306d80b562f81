package main

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func TestPPTPMessages(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  []byte
		typ  uint16
		size int
	}{
		{"SCCRQ", sccrq("h"), pptpSCCRQ, 156},
		{"SCCRP", sccrp("h"), pptpSCCRP, 156},
		{"OCRQ", ocrq(7, 1), pptpOCRQ, 168},
		{"OCRP", ocrp(0x7001, 7), pptpOCRP, 32},
		{"Echo-Request", echoRequest(1), pptpEchoQ, 16},
		{"Echo-Reply", echoReply(1), pptpEchoP, 20},
		{"Call-Clear-Request", callClear(7), pptpCCRQ, 16},
		{"Call-Disconnect-Notify", callDisconnect(7), pptpCDN, 148},
		{"Stop-Request", stopRequest(), pptpStopQ, 16},
		{"Stop-Reply", stopReply(), pptpStopP, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.msg) != tc.size {
				t.Fatalf("size %d, want %d", len(tc.msg), tc.size)
			}
			// RFC 2637 2.1: Length, Message Type 1, Magic Cookie 0x1A2B3C4D.
			if got := hex.EncodeToString(tc.msg[:8]); got != hex.EncodeToString([]byte{byte(tc.size >> 8), byte(tc.size), 0, 1, 0x1a, 0x2b, 0x3c, 0x4d}) {
				t.Fatalf("header %s", got)
			}
			b, typ, err := readPPTP(bytes.NewReader(tc.msg))
			if err != nil || typ != tc.typ || !bytes.Equal(b, tc.msg) {
				t.Fatalf("readPPTP = %d, %v", typ, err)
			}
		})
	}
	m := ocrp(0x7001, 0x0102)
	if be.Uint16(m[offOCRPCallID:]) != 0x7001 || be.Uint16(m[offOCRPPeerCallID:]) != 0x0102 || m[offOCRPResult] != 1 {
		t.Fatalf("OCRP fields: % x", m[12:18])
	}
	bad := sccrq("h")
	bad[5] ^= 1
	if _, _, err := readPPTP(bytes.NewReader(bad)); err == nil {
		t.Fatal("a wrong magic cookie was accepted")
	}
}

func TestGRE(t *testing.T) {
	b := greV1(0xbeef, 5, []byte("VPNPT m 5"))
	// K and S set, version 1, protocol 0x880B (PPP), payload length 9, Call ID 0xbeef, seq 5.
	if want := "3001880b0009beef00000005"; hex.EncodeToString(b[:12]) != want {
		t.Fatalf("header %x, want %s", b[:12], want)
	}
	f, err := parseGRE(b)
	if err != nil || f.CallID != 0xbeef || f.Seq != 5 || !f.HasSeq || string(f.Payload) != "VPNPT m 5" {
		t.Fatalf("parseGRE = %+v, %v", f, err)
	}
	ack := append([]byte{0x20, 0x81, 0x88, 0x0b, 0, 0, 0, 9}, 0, 0, 0, 3)
	if f, err := parseGRE(ack); err != nil || !f.HasAck || f.Ack != 3 || f.HasSeq {
		t.Fatalf("ack-only: %+v, %v", f, err)
	}
	for name, p := range map[string][]byte{
		"version 0":     {0x20, 0x00, 0x88, 0x0b, 0, 0, 0, 1},
		"no key":        {0x10, 0x01, 0x88, 0x0b, 0, 0, 0, 1, 0, 0, 0, 1},
		"IPv4 protocol": {0x30, 0x01, 0x08, 0x00, 0, 0, 0, 1, 0, 0, 0, 1},
		"long payload":  {0x20, 0x01, 0x88, 0x0b, 0, 9, 0, 1},
		"short":         {0x20, 0x01},
	} {
		if _, err := parseGRE(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestIPsecAndL2TP(t *testing.T) {
	spi, seq, pl, err := parseESP(esp(0x100, 9, []byte("x")))
	if err != nil || spi != 0x100 || seq != 9 || string(pl) != "x" {
		t.Fatalf("esp: %x %d %q %v", spi, seq, pl, err)
	}
	spi, seq, pl, err = parseAH(ah(0x200, 3, []byte("y")))
	if err != nil || spi != 0x200 || seq != 3 || string(pl) != "y" {
		t.Fatalf("ah: %x %d %q %v", spi, seq, pl, err)
	}
	if a := ah(1, 1, nil); a[1] != 4 { // (12+12)/4 - 2
		t.Fatalf("AH payload len %d", a[1])
	}
	ike := ikeMessage(ikeMsg{ISPI: 0x1122334455667788, Flags: ikeFlagInitiator, MsgID: 4, Nonce: []byte("VPNPT m 4")})
	if ike[17] != 0x20 || ike[18] != 34 || int(be.Uint32(ike[24:])) != len(ike) {
		t.Fatalf("ike header % x", ike[:28])
	}
	m, err := parseIKE(ike)
	if err != nil || m.MsgID != 4 {
		t.Fatalf("parseIKE: %+v %v", m, err)
	}
	if mk, s, ok := parsePayload(m.Nonce); !ok || mk != "m" || s != 4 {
		t.Fatalf("nonce payload %q", m.Nonce)
	}
	reply, ev, err := udpAnswer("natt", append(make([]byte, 4), ike...))
	if err != nil || ev.Marker != "m" || be.Uint32(reply) != 0 {
		t.Fatalf("natt answer: %v %+v", err, ev)
	}
	if r, err := parseIKE(reply[4:]); err != nil || r.ISPI != m.ISPI || r.Flags&ikeFlagResponse == 0 || r.RSPI == 0 {
		t.Fatalf("natt reply %+v %v", r, err)
	}
	l := l2tpControl(l2tpMsg{Ns: 2, Type: l2tpSCCRQ, AssignedTunnel: 0x1001, HostName: "VPNPT m 2"})
	if be.Uint16(l) != 0xc802 || int(be.Uint16(l[2:])) != len(l) {
		t.Fatalf("l2tp header % x", l[:12])
	}
	reply, _, err = udpAnswer("l2tp", l)
	if err != nil {
		t.Fatal(err)
	}
	r, err := parseL2TP(reply)
	if err != nil || r.Type != l2tpSCCRP || r.TunnelID != 0x1001 || r.Nr != 3 || r.HostName != "VPNPT m 2" {
		t.Fatalf("l2tp reply %+v %v", r, err)
	}
}
