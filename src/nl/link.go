package nl

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Link is a network device as rtnetlink lists it.
type Link struct {
	Index uint32
	Name  string
	Flags uint32 // unix.IFF_*
}

// route runs one rtnetlink request in the current namespace.
func route(typ, flags uint16, body []byte) ([]Message, error) {
	c, err := Dial(unix.NETLINK_ROUTE, 0)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return nil, err
	}
	return c.Execute(Message{Type: typ, Flags: Request | flags, Data: body})
}

// ifinfomsg is struct ifinfomsg (family, type, index, flags, change: 16
// bytes) for index idx.
func ifinfomsg(idx uint32) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(b[4:8], idx)
	return b
}

func parseLink(m Message) (Link, bool) {
	if m.Type != unix.RTM_NEWLINK || len(m.Data) < unix.SizeofIfInfomsg {
		return Link{}, false
	}
	l := Link{Index: binary.NativeEndian.Uint32(m.Data[4:8]), Flags: binary.NativeEndian.Uint32(m.Data[8:12])}
	_ = Walk(m.Data[unix.SizeofIfInfomsg:], func(typ uint16, d []byte) error {
		if typ == unix.IFLA_IFNAME {
			l.Name = String(d)
		}
		return nil
	})
	return l, l.Name != ""
}

// Links lists the current namespace's devices.
func Links() ([]Link, error) {
	msgs, err := route(unix.RTM_GETLINK, Dump, ifinfomsg(0))
	if err != nil {
		return nil, err
	}
	var out []Link
	for _, m := range msgs {
		if l, ok := parseLink(m); ok {
			out = append(out, l)
		}
	}
	return out, nil
}

func getLink(body []byte, what string) (Link, error) {
	msgs, err := route(unix.RTM_GETLINK, 0, body)
	if err != nil {
		return Link{}, fmt.Errorf("link %s: %w", what, err)
	}
	for _, m := range msgs {
		if l, ok := parseLink(m); ok {
			return l, nil
		}
	}
	return Link{}, fmt.Errorf("link %s: no answer", what)
}

// LinkByName finds a device by name (one request, not a dump).
func LinkByName(name string) (Link, error) {
	return getLink(append(ifinfomsg(0), Attrs(nil).Str(unix.IFLA_IFNAME, name)...), name)
}

// LinkByIndex finds a device by index.
func LinkByIndex(idx uint32) (Link, error) { return getLink(ifinfomsg(idx), fmt.Sprint(idx)) }

// IPv4Addrs lists a device's IPv4 addresses in the kernel's order (the
// primary address first): the local address of point-to-point devices.
func IPv4Addrs(idx uint32) ([]netip.Addr, error) {
	// struct ifaddrmsg: family, prefixlen, flags, scope, index.
	msgs, err := route(unix.RTM_GETADDR, Dump, []byte{unix.AF_INET, 0, 0, 0, 0, 0, 0, 0})
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, m := range msgs {
		if m.Type != unix.RTM_NEWADDR || len(m.Data) < unix.SizeofIfAddrmsg || m.Data[0] != unix.AF_INET ||
			binary.NativeEndian.Uint32(m.Data[4:8]) != idx {
			continue
		}
		var local, addr netip.Addr
		_ = Walk(m.Data[unix.SizeofIfAddrmsg:], func(typ uint16, d []byte) error {
			if len(d) != 4 {
				return nil
			}
			switch typ {
			case unix.IFA_LOCAL:
				local = netip.AddrFrom4([4]byte(d))
			case unix.IFA_ADDRESS:
				addr = netip.AddrFrom4([4]byte(d))
			}
			return nil
		})
		if local.IsValid() {
			out = append(out, local)
		} else if addr.IsValid() {
			out = append(out, addr)
		}
	}
	return out, nil
}
