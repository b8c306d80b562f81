package plan

// What the userspace ESP multiplexer (src/engine/esp, doc.go there) needs.
const (
	// PrioESPUntrack is the raw chain that untracks what the ESP engine
	// demultiplexed: it runs right after the engine's queue rule in raw
	// prerouting (PrioRaw) and before conntrack (-200).
	PrioESPUntrack int32 = PrioRaw + 1

	// CounterESPUnsolicited counts ESP from the WAN to the LAN that the
	// engine did not demultiplex, dropped in forward.
	CounterESPUnsolicited = "esp_unsolicited"

	chainESPRaw       = "esp_raw"
	chainESPLeakGuard = "esp_leak_guard"

	// PrioLeakGuard runs after srcnat (100): what is still unrewritten
	// there will stay so.
	PrioLeakGuard int32 = 110

	// CounterESPLeak counts LAN ESP dropped because no engine rewrote it.
	CounterESPLeak  = "esp_leak_dropped"
	chainESPUntrack = "esp_untrack"

	// The ESP engine's kernel data plane (src/engine/esp doc.go).
	MapESPIn       = "esp_in"        // server . inbound SPI (two halves) : client
	MapESPOut      = "esp_out"       // client . server . outbound SPI (two halves; a set)
	MapESPWANSrc   = "esp_wan_src"   // WAN device index : its IPv4 address
	MapESPWANAddrs = "esp_wan_addrs" // the WAN addresses (a set)
	// MapESPServers holds the servers LAN clients use raw ESP with (a
	// set): unmarked ESP from them to a WAN address is dropped in the
	// kernel, also while no engine runs (no ICMP error goes back).
	MapESPServers = "esp_servers"

	// CounterESPNoEngine counts inbound ESP from a server of esp_servers
	// to a WAN address that neither the maps nor the engine forwarded:
	// dropped, so fw4's input chain never answers it with an ICMP error.
	CounterESPNoEngine = "esp_no_engine_dropped"
)

// espMaps are the ESP engine's maps. The inbound and outbound ones count
// per element: those counters are the session table's traffic figures.
func espMaps() []Map {
	return []Map{
		{Name: MapESPIn, Engine: "esp", Key: Key{FieldIPSaddr, FieldSPIHi, FieldSPILo}, Data: FieldIPDaddr, Counter: true},
		{Name: MapESPOut, Engine: "esp", Key: Key{FieldIPSaddr, FieldIPDaddr, FieldSPIHi, FieldSPILo}, Counter: true},
		{Name: MapESPWANSrc, Engine: "esp", Key: Key{FieldMetaOIF}, Data: FieldIPSaddr},
		{Name: MapESPWANAddrs, Engine: "esp", Key: Key{FieldIPDaddr}},
		{Name: MapESPServers, Engine: "esp", Key: Key{FieldIPSaddr}},
	}
}

// userspaceESP adds what the userspace ESP multiplexer needs to p and
// registers its queue in p.Queues (queue_base+1):
//
//   - raw prerouting (-300): LAN ESP (and with keep_ike_port, LAN IKE from
//     port 500 to port 500) is untracked; ESP and IKE (source port 500)
//     arriving on the WAN are queued, before conntrack and routing, so the
//     engine can rewrite the destination to the client;
//   - raw prerouting (-299): packets the engine marked are untracked;
//   - forward: ESP and IKE (destination port 500) from LAN to WAN are queued
//     after routing, where the engine rewrites the ESP source (a source
//     rewritten before routing would be a martian) and watches IKE; and
//     first of all, ESP from WAN to LAN without the engine's mark is dropped
//     and counted, so nothing unsolicited reaches the LAN.
//
// Where the kernel has the fast path (Caps.MapPayload), rules in front of
// each queue rule forward what the engine's maps know, without NFQUEUE:
//
//   - raw prerouting: inbound ESP to one of the WAN addresses whose
//     (server . SPI) is in esp_in gets the client as destination, is
//     untracked, marked and accepted (for this chain);
//   - forward: outbound ESP whose (client . server . SPI) is in esp_out
//     gets the outgoing device's address from esp_wan_src as source, is
//     marked and accepted (for this chain; fw4 accepts the mark).
//
// So only the first packets of an SA reach the engine, and SAs it learned
// keep flowing while the daemon is down. And in raw prerouting (-299):
// unmarked ESP from a server in esp_servers (the servers LAN clients use)
// to a WAN address is dropped and counted, as the engine would: with the
// daemon down the bypassed queue rule would otherwise let it reach fw4's
// input chain, which answers it with an ICMP error to the server.
//
// Everything is IPv4: ESP over IPv6 needs no NAT and is left alone. Queue
// rules use bypass (fail-open; src/engine/esp doc.go says what that costs).
func userspaceESP(p *Plan, in Input, pre, fwd *Chain) bool {
	num := in.Config.QueueBase + 1
	fast := in.Caps.MapPayload
	queue := func() *QueueStmt { return &QueueStmt{Num: num, Bypass: true} }
	raw := Chain{Name: chainESPRaw, Hook: HookPrerouting, Priority: PrioRaw}
	raw.Rules = append(raw.Rules, Rule{
		Comment:  "vpn-passthrough: LAN ESP is NATed by the ESP engine, not conntrack",
		IIFSet:   SetLAN,
		IPv4Only: true,
		L4:       ProtoESP,
		Notrack:  true,
	})
	if in.Config.IPsec.KeepIKEPort {
		raw.Rules = append(raw.Rules, Rule{
			Comment:  "vpn-passthrough: keep_ike_port: IKE 500->500 is NATed by the ESP engine, keeping port 500",
			IIFSet:   SetLAN,
			IPv4Only: true,
			L4:       ProtoUDP,
			SPort:    500,
			DPort:    500,
			Notrack:  true,
		})
	}
	if fast {
		raw.Rules = append(raw.Rules, Rule{
			Comment:  "vpn-passthrough: inbound ESP of a known SA goes to its client from the kernel map",
			IIFSet:   SetWAN,
			IPv4Only: true,
			L4:       ProtoESP,
			KeyMatch: &KeyMatch{Key: Key{FieldIPDaddr}, Set: MapESPWANAddrs},
			MapSet:   &MapStmt{Dst: FieldIPDaddr, Key: Key{FieldIPSaddr, FieldSPIHi, FieldSPILo}, Map: MapESPIn},
			Notrack:  true,
			SetMark:  true,
			Verdict:  VerdictAccept,
		})
	}
	raw.Rules = append(raw.Rules,
		Rule{
			Comment:  "vpn-passthrough: inbound ESP is demultiplexed by SPI before conntrack and routing",
			IIFSet:   SetWAN,
			IPv4Only: true,
			L4:       ProtoESP,
			Queue:    queue(),
		},
		Rule{
			Comment:  "vpn-passthrough: inbound IKE is watched by the ESP engine (keep_ike_port: demultiplexed by IKE SPI)",
			IIFSet:   SetWAN,
			IPv4Only: true,
			L4:       ProtoUDP,
			SPort:    500,
			Queue:    queue(),
		})
	untrack := Chain{Name: chainESPUntrack, Hook: HookPrerouting, Priority: PrioESPUntrack, Rules: []Rule{{
		Comment:  "vpn-passthrough: what the ESP engine demultiplexed stays out of conntrack",
		IIFSet:   SetWAN,
		IPv4Only: true,
		MarkMask: MarkMask,
		Mark:     Mark,
		Notrack:  true,
		// Ends this chain for them: the drop below is for unmarked ESP.
		Verdict: VerdictAccept,
	}}}
	if fast {
		// A bypassed queue rule (no engine) accepts; routing then delivers
		// ESP addressed to the router to fw4's input chain, whose reject
		// sends an ICMP error to the server. The engine itself drops
		// unknown SPIs of known servers, so this is the same decision,
		// kept by the kernel.
		untrack.Rules = append(untrack.Rules, Rule{
			Comment:  "vpn-passthrough: ESP of a LAN client's server that nothing forwarded: dropped, no ICMP back (also with the daemon down)",
			IIFSet:   SetWAN,
			IPv4Only: true,
			L4:       ProtoESP,
			// KeyMatch marks the rule as one on engine-programmed sets,
			// which the guard table cannot hold (Plan.Guard).
			KeyMatch: &KeyMatch{Key: Key{FieldIPSaddr}, Set: MapESPServers},
			DAddrSet: MapESPWANAddrs,
			MarkMask: MarkMask,
			Mark:     Mark,
			MarkNot:  true,
			Counter:  CounterESPNoEngine,
			Verdict:  VerdictDrop,
		})
		p.Counters = append(p.Counters, CounterESPNoEngine)
	}
	guard := Rule{
		Comment:  "vpn-passthrough: ESP from the WAN reaches the LAN only through the ESP engine",
		IIFSet:   SetWAN,
		OIFSet:   SetLAN,
		IPv4Only: true,
		L4:       ProtoESP,
		MarkMask: MarkMask,
		Mark:     Mark,
		MarkNot:  true,
		Counter:  CounterESPUnsolicited,
		Verdict:  VerdictDrop,
	}
	// What the engine or the maps forwarded leaves our forward chain at
	// once, counted as passed: the other protocols' rules further down
	// cannot match it (they cost inbound ESP ~20 rule evaluations).
	passIn := Rule{
		Comment:  "vpn-passthrough: ESP the ESP engine demultiplexed passes (counted)",
		IIFSet:   SetWAN,
		OIFSet:   SetLAN,
		IPv4Only: true,
		L4:       ProtoESP,
		MarkMask: MarkMask,
		Mark:     Mark,
		Counter:  PassedCounter(IPsec, "in"),
		Verdict:  VerdictAccept,
	}
	first := []Rule{guard, passIn}
	if fast {
		first = append(first, Rule{
			Comment:  "vpn-passthrough: outbound ESP of a known SA gets the WAN source from the kernel maps",
			IIFSet:   SetLAN,
			OIFSet:   SetWAN,
			IPv4Only: true,
			L4:       ProtoESP,
			KeyMatch: &KeyMatch{Key: Key{FieldIPSaddr, FieldIPDaddr, FieldSPIHi, FieldSPILo}, Set: MapESPOut},
			MapSet:   &MapStmt{Dst: FieldIPSaddr, Key: Key{FieldMetaOIF}, Map: MapESPWANSrc},
			Counter:  PassedCounter(IPsec, "out"),
			SetMark:  true,
			Verdict:  VerdictAccept,
		})
		p.Maps = append(p.Maps, espMaps()...)
	}
	fwd.Rules = append(first, fwd.Rules...)
	fwd.Rules = append(fwd.Rules,
		Rule{
			Comment:  "vpn-passthrough: outbound ESP gets the WAN source after routing (ESP engine)",
			IIFSet:   SetLAN,
			OIFSet:   SetWAN,
			IPv4Only: true,
			L4:       ProtoESP,
			Queue:    queue(),
		},
		Rule{
			Comment:  "vpn-passthrough: outbound IKE is watched by the ESP engine (keep_ike_port: NATed)",
			IIFSet:   SetLAN,
			OIFSet:   SetWAN,
			IPv4Only: true,
			L4:       ProtoUDP,
			DPort:    500,
			Queue:    queue(),
		})
	// LAN ESP is untracked above, so masquerade never sees it: only the
	// engine gives it the WAN address. If the engine is not there (daemon
	// down: the queue rule bypasses) the packet would leave with its LAN
	// source. A bypassed packet goes on to the next base chain, not the
	// next rule, hence a chain of its own after NAT.
	leak := Chain{Name: chainESPLeakGuard, Hook: HookPostrouting, Priority: PrioLeakGuard}
	for _, m := range []Rule{{L4: ProtoESP}, {L4: ProtoUDP, SPort: 500, DPort: 500}} {
		r := m
		r.Comment = "vpn-passthrough: untracked ESP/IKE the engine did not rewrite would leak a LAN address"
		r.OIFSet = SetWAN
		r.IPv4Only = true
		r.Untracked = true
		r.MarkMask, r.Mark, r.MarkNot = MarkMask, Mark, true
		r.Counter = CounterESPLeak
		r.Verdict = VerdictDrop
		leak.Rules = append(leak.Rules, r)
	}
	p.Chains = append(p.Chains, raw, untrack, leak)
	p.Counters = append(p.Counters, CounterESPUnsolicited, CounterESPLeak)
	p.Queues = append(p.Queues, Queue{Num: num, Engine: "esp", Maps: fast, Mark: Mark})
	return true
}
