package nft

import "net/netip"

func parseIPv4(s string) ([]byte, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return nil, errorf("%q is not an IPv4 address", s)
	}
	b := a.As4()
	return b[:], nil
}
