// Package nft applies a plan.Plan to the kernel through nftables netlink (no
// nft(8) process): one atomic transaction per apply, idempotent, and a watch
// that notices when someone deletes our table (fw4 flush, firewall restart).
package nft
