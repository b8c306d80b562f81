package nft

import "testing"

// TestFW4AcceptMark reads the include's accept mark out of a forward chain
// that also holds rules google/nftables cannot decode (`ct original
// proto-dst`, as our ruleset-post include adds), and other marks that are
// not ours.
func TestFW4AcceptMark(t *testing.T) {
	ns := newNetns(t)
	c := ns.conn(t)
	if _, _, found, err := c.FW4AcceptMark(); err != nil || found {
		t.Fatalf("without fw4: found %v, %v", found, err)
	}
	ns.nft(t, `table inet fw4 {
	chain forward {
		type filter hook forward priority 0; policy drop;
		meta l4proto udp ct original proto-dst 500 ct state established,related counter accept comment "vpn-passthrough: IKE stays off the flowtable (the ESP engine reads it)"
		meta mark & 0x00ff0000 == 0x00110000 accept comment "someone else's"
		meta mark & 0x0f000000 == 0x05000000 counter accept comment "vpn-passthrough: accepted by userspace engine"
	}
}
`, "-f", "-")
	mark, mask, found, err := c.FW4AcceptMark()
	if err != nil || !found || mark != 0x05000000 || mask != 0x0f000000 {
		t.Errorf("FW4AcceptMark = %#x/%#x found %v, %v; want 0x05000000/0x0f000000", mark, mask, found, err)
	}
	ns.nft(t, "flush chain inet fw4 forward\n", "-f", "-")
	if _, _, found, err := c.FW4AcceptMark(); err != nil || found {
		t.Errorf("flushed chain: found %v, %v", found, err)
	}
}
