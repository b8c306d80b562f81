package main

import (
	"context"
	"flag"
	"time"
)

// runServers runs every server in one process: PPTP control and GRE, raw ESP
// and AH, and UDP for IKE, NAT-T and L2TP. It prints "ready" once all listen.
func runServers(ctx context.Context, out *emitter, args []string) error {
	fs := flag.NewFlagSet("servers", flag.ContinueOnError)
	dur := fs.Duration("duration", 5*time.Minute, "maximum lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := serverCtx(ctx, *dur)
	defer cancel()
	pptp := newPPTPServer(out)
	if err := pptp.start(ctx); err != nil {
		return err
	}
	espS := &rawServer{p: rawProtoFor("esp"), out: out, froms: map[string]int{}}
	espS.spi = espS.p.spi
	if err := espS.start(ctx); err != nil {
		return err
	}
	ahS := &rawServer{p: rawProtoFor("ah"), out: out, froms: map[string]int{}}
	ahS.spi = ahS.p.spi
	if err := ahS.start(ctx); err != nil {
		return err
	}
	udp := &udpServer{out: out, in: map[string]int{}, bad: map[string]int{}}
	if err := udp.start(ctx, []string{"ike", "natt", "l2tp"}); err != nil {
		return err
	}
	out.emit(event{Event: "ready", Proto: "all"})
	<-ctx.Done()
	pptp.summary()
	espS.summary()
	ahS.summary()
	udp.summary()
	return nil
}
