// Package src holds no code of its own: it is the root of vpn-passthrough's
// packages and carries the test that keeps the pure core's imports clean.
package src
