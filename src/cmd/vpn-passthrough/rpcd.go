package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

// rpcd implements the rpcd exec plugin protocol: `list` prints the methods
// and their argument signatures; `call <method>` reads JSON arguments on
// stdin and prints ONE JSON object (rpcd rejects arrays and other values).
func rpcd(args []string, stdin io.Reader, stdout io.Writer, sock string) error {
	if len(args) == 0 {
		return usageError{"rpcd: want list or call <method>"}
	}
	enc := json.NewEncoder(stdout)
	switch args[0] {
	case "list":
		return enc.Encode(map[string]any{"status": map[string]any{}})
	case "call":
		if len(args) < 2 {
			return usageError{"rpcd call: missing method"}
		}
		// rpcd always sends an object (at least ubus_rpc_session); read and
		// check it so a broken caller gets an error, not silence.
		var in map[string]any
		if err := json.NewDecoder(io.LimitReader(stdin, 64<<10)).Decode(&in); err != nil && err != io.EOF {
			return enc.Encode(map[string]any{"error": fmt.Sprintf("arguments are not a JSON object: %v", err)})
		}
		switch args[1] {
		case "status":
			s, err := status.Fetch(sock)
			if err != nil {
				return enc.Encode(map[string]any{"error": err.Error(), "running": false})
			}
			return enc.Encode(s)
		}
		return enc.Encode(map[string]any{"error": fmt.Sprintf("unknown method %q", args[1])})
	}
	return usageError{fmt.Sprintf("rpcd: unknown verb %q", args[0])}
}
