package plan

// What the userspace PPTP engine (src/engine/pptp, doc.go there) needs.
const (
	// PrioPPTPUntrack is the raw chain that untracks the GRE the PPTP
	// engine translated: right after the engine's queue rule in raw
	// prerouting (PrioRaw) and before conntrack (-200).
	PrioPPTPUntrack int32 = PrioRaw + 1

	// CounterPPTPInvalid counts control segments conntrack found invalid.
	CounterPPTPInvalid = "invalid_pptp_control"

	// The PPTP kernel data plane (Caps.MapPayload): inbound GRE of a known
	// call is demultiplexed in raw prerouting from these maps, which the
	// engine fills from the control connection. Keys are the translated
	// Call ID as the server sends it in the GRE key.
	MapPPTPCalls    = "pptp_gre_calls" // WAN address . server . translated Call ID (a set; per-call counters)
	MapPPTPDst      = "pptp_gre_dst"   // server . translated Call ID : client address
	MapPPTPKey      = "pptp_gre_key"   // server . translated Call ID : the client's own Call ID
	MapPPTPWANAddrs = "pptp_wan_addrs" // router addresses the control connections use (a set)
	// CounterPPTPUnknownCall counts enhanced GRE to one of those addresses
	// whose Call ID no element covers: dropped.
	CounterPPTPUnknownCall = "pptp_gre_unknown_call"

	chainPPTPRaw     = "pptp_raw"
	chainPPTPUntrack = "pptp_untrack"
	// chainPPTPGREGuard drops new GRE no call holds, after conntrack.
	chainPPTPGREGuard = "pptp_gre_guard"
)

// PPTPMaps reports whether the userspace PPTP engine runs on the kernel data
// plane: nft payload statements fed by map lookups, and ctnetlink, from
// which the engine learns the router address each call's elements are keyed
// by (without it the elements cannot be keyed, and every call would fail).
func PPTPMaps(c Caps) bool { return c.MapPayload && c.Ctnetlink }

// userspacePPTP adds what the userspace PPTP engine needs to p and registers
// its queue (queue_base) in p.Queues:
//
//   - raw prerouting (-300): GRE version 1 from the WAN is queued before
//     conntrack and routing, so the engine can give a translated Call ID its
//     client's address and Call ID back (and its mark); so is TCP 1723 in
//     both directions, so the engine can drop RSTs that do not match the
//     stream before conntrack sees them (it passes everything else);
//   - raw prerouting (-299): inbound GRE the engine marked is untracked, and
//     fw4's forward include accepts it (files/usr/share/nftables.d);
//   - forward: the control connection, TCP 1723 in both directions, is
//     queued; the engine rewrites Call IDs in it. Its accept comes from fw4
//     as for any LAN->WAN connection.
//
// Outbound GRE needs no rule: the engine never changes it (its key is the
// server's own Call ID), and the kernel's masquerade rewrites its source at
// postrouting, after routing. Unlike ESP, that works for several clients:
// a GRE version 1 conntrack tuple holds the key, unique per call at the
// server, so two calls to one server never clash (src/engine/pptp doc.go).
//
// Only GRE version 1 (enhanced GRE, PPTP's) is touched: the router's own GRE
// tunnels and other GRE keep conntrack. Queue rules use bypass (fail-open
// when the daemon is down; src/nfqueue doc.go says what that costs).
func userspacePPTP(p *Plan, in Input, pre, fwd *Chain) bool {
	num := in.Config.QueueBase
	queue := func() *QueueStmt { return &QueueStmt{Num: num, Bypass: true} }
	fast := PPTPMaps(in.Caps)
	raw := Chain{Name: chainPPTPRaw, Hook: HookPrerouting, Priority: PrioRaw}
	if fast {
		// Known calls: the kernel gives the client's address and Call ID
		// back, untracked and marked (fw4's include accepts the mark), only
		// when sent to the router's address of the call's control
		// connection (the set's key starts with it). Both rewrites are
		// keyed by the packet as it arrived: the address first, then the
		// key.
		raw.Rules = append(raw.Rules, Rule{
			Comment:  "vpn-passthrough: inbound GRE of a known PPTP call goes to its client from the kernel maps",
			IIFSet:   SetWAN,
			GREv1:    true,
			GREPPTP:  true,
			KeyMatch: &KeyMatch{Key: Key{FieldIPDaddr, FieldIPSaddr, FieldGREKey}, Set: MapPPTPCalls},
			MapSet:   &MapStmt{Dst: FieldIPDaddr, Key: Key{FieldIPSaddr, FieldGREKey}, Map: MapPPTPDst},
			MapSet2:  &MapStmt{Dst: FieldGREKey, Key: Key{FieldIPSaddr, FieldGREKey}, Map: MapPPTPKey},
			Notrack:  true,
			SetMark:  true,
			Verdict:  VerdictAccept,
		})
		p.Maps = append(p.Maps,
			Map{Name: MapPPTPCalls, Engine: "pptp", Key: Key{FieldIPDaddr, FieldIPSaddr, FieldGREKey}, Counter: true},
			Map{Name: MapPPTPDst, Engine: "pptp", Key: Key{FieldIPSaddr, FieldGREKey}, Data: FieldIPDaddr},
			Map{Name: MapPPTPKey, Engine: "pptp", Key: Key{FieldIPSaddr, FieldGREKey}, Data: FieldGREKey},
			Map{Name: MapPPTPWANAddrs, Engine: "pptp", Key: Key{FieldIPDaddr}})
	} else {
		p.Maps = append(p.Maps, Map{Name: MapPPTPWANAddrs, Engine: "pptp", Key: Key{FieldIPDaddr}})
		raw.Rules = append(raw.Rules, Rule{
			Comment: "vpn-passthrough: inbound PPTP GRE is demultiplexed by Call ID before conntrack and routing",
			IIFSet:  SetWAN,
			GREv1:   true,
			Queue:   queue(),
		})
	}
	raw.Rules = append(raw.Rules, Rule{
		// A spoofed in-window RST would move conntrack's record of the
		// stream and cut the connection: the engine checks RSTs against
		// the stream before conntrack sees them (src/engine/pptp).
		Comment:  "vpn-passthrough: PPTP control RSTs are checked by the PPTP engine before conntrack",
		IIFSet:   SetLAN,
		IPv4Only: true,
		L4:       ProtoTCP,
		DPort:    1723,
		Queue:    queue(),
	}, Rule{
		Comment:  "vpn-passthrough: PPTP control RSTs are checked by the PPTP engine before conntrack",
		IIFSet:   SetWAN,
		IPv4Only: true,
		L4:       ProtoTCP,
		SPort:    1723,
		Queue:    queue(),
	})
	p.Counters = append(p.Counters, CounterPPTPUnknownCall)
	untrack := Chain{Name: chainPPTPUntrack, Hook: HookPrerouting, Priority: PrioPPTPUntrack, Rules: []Rule{{
		Comment:  "vpn-passthrough: GRE the PPTP engine translated stays out of conntrack",
		IIFSet:   SetWAN,
		GREv1:    true,
		MarkMask: MarkMask,
		Mark:     Mark,
		Notrack:  true,
	}}}
	// What the engine (or its maps) did not translate (no call holds its
	// Call ID, or no engine runs and the queue rule let it pass): dropped
	// silently when sent to a router address PPTP control connections
	// use. fw4's input would reject it with an ICMP error, on which a real
	// pptpd tears the call down, so a call would die because the daemon
	// restarted. After conntrack, and only if new (or invalid: malformed
	// GRE that conntrack cannot parse): GRE of the router's own
	// calls is related to their control connection (the helper in output,
	// router.go) and goes on to fw4's input, even while a LAN call's
	// control connection makes the address one of the engine's.
	guard := Chain{Name: chainPPTPGREGuard, Hook: HookPrerouting, Priority: PrioMangle, Rules: []Rule{{
		Comment:  "vpn-passthrough: new inbound GRE to a PPTP WAN address the engine did not translate is dropped",
		IIFSet:   SetWAN,
		GREv1:    true,
		CtState:  CtStateNew | CtStateInvalid,
		KeyMatch: &KeyMatch{Key: Key{FieldIPDaddr}, Set: MapPPTPWANAddrs},
		Counter:  CounterPPTPUnknownCall,
		Verdict:  VerdictDrop,
	}}}
	// Control segments from the LAN that conntrack finds invalid (outside
	// both endpoints' windows: spoofed RSTs, forged messages) belong to no
	// connection: dropped and counted before the engine, so they cannot
	// move its stream state (src/engine/pptp doc.go). From the WAN an
	// invalid segment is never translated back by conntrack: it stays
	// addressed to the router and never reaches the forward hook.
	p.Counters = append(p.Counters, CounterPPTPInvalid)
	fwd.Rules = append(fwd.Rules,
		Rule{
			Comment:  "vpn-passthrough: PPTP control segments conntrack finds invalid are dropped before the engine",
			IIFSet:   SetLAN,
			OIFSet:   SetWAN,
			IPv4Only: true,
			L4:       ProtoTCP,
			DPort:    1723,
			CtState:  CtStateInvalid,
			Counter:  CounterPPTPInvalid,
			Verdict:  VerdictDrop,
		},
		Rule{
			Comment:  "vpn-passthrough: PPTP control, client to server: Call IDs translated by the PPTP engine",
			IIFSet:   SetLAN,
			OIFSet:   SetWAN,
			IPv4Only: true,
			L4:       ProtoTCP,
			DPort:    1723,
			Queue:    queue(),
		},
		Rule{
			Comment:  "vpn-passthrough: PPTP control, server to client: Call IDs translated back by the PPTP engine",
			IIFSet:   SetWAN,
			OIFSet:   SetLAN,
			IPv4Only: true,
			L4:       ProtoTCP,
			SPort:    1723,
			Queue:    queue(),
		})
	p.Chains = append(p.Chains, raw)
	if !fast {
		p.Chains = append(p.Chains, untrack)
	}
	p.Chains = append(p.Chains, guard)
	p.Queues = append(p.Queues, Queue{Num: num, Engine: "pptp", Maps: fast, Mark: Mark, ClearHelper: in.Caps.PPTPHelper})
	return true
}
