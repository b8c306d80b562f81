// Command fw4dump writes fw4's forward chain (table inet fw4) as the kernel
// lists it over netlink, for src/nft's parser tests: the flowtable guest
// (test/qemu) runs it where the kernel has flow offloading, which this
// host's kernel lacks.
//
//	fw4dump            # in the router's network namespace, to stdout
//
// Output, one item a line: "rule HEX" (one rule's attributes, after the
// nfgenmsg header, in chain order) and "set NAME HEX" (one key of a set an
// exemption candidate looks up).
package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"sort"

	"github.com/vpn-passthrough/vpn-passthrough/src/nft"
)

func main() {
	n, err := nft.Open()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fw4dump:", err)
		os.Exit(1)
	}
	rules, sets, err := n.FW4ForwardDump()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fw4dump:", err)
		os.Exit(1)
	}
	fmt.Println("# fw4dump: table inet fw4, chain forward, as the kernel listed it")
	for _, r := range rules {
		fmt.Println("rule", hex.EncodeToString(r))
	}
	var names []string
	for name := range sets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, k := range sets[name] {
			fmt.Println("set", name, hex.EncodeToString(k))
		}
	}
}
