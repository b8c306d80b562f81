package pptp

import (
	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/nfqueue"
)

// The per-packet cost of the GRE path, without the kernel: what the engine
// adds to each inbound packet on top of the NFQUEUE round trip (outbound GRE
// never reaches the engine). 64-byte payloads, as in `make bench`.

func benchEngine(b *testing.B, calls int) (*harness, []uint16) {
	h := newHarness(b, Config{Common: engine.Common{MaxSessions: 4096, MaxPerClient: 4096}})
	var trans []uint16
	for i := 0; i < calls; i++ {
		f := h.flow(1+i%200, uint16(40000+i))
		f.open()
		p := f.out(ocrq(uint16(i + 1)))
		tr := u16(tcpPayload(b, p.Data), 12)
		f.in(ocrp(uint16(0x7000+i), tr))
		trans = append(trans, tr)
	}
	return h, trans
}

func BenchmarkGREIn(b *testing.B) {
	h, trans := benchEngine(b, 256)
	pkt := greV1(server, wanAddr, trans[17], 1, make([]byte, 64))
	buf := make([]byte, len(pkt))
	batch := make([]nfqueue.Packet, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(buf, pkt)
		batch[0] = nfqueue.Packet{Hook: hookPrerouting, Data: buf}
		h.e.HandleBatch(batch)
	}
	if !batch[0].Modified {
		b.Fatal("not translated")
	}
}

// BenchmarkGREBatch64 is a full batch as the queue hands it over: inbound
// GRE of 64 different calls.
func BenchmarkGREBatch64(b *testing.B) {
	h, trans := benchEngine(b, 256)
	var pkts [][]byte
	for i := 0; i < 64; i++ {
		pkts = append(pkts, greV1(server, wanAddr, trans[i*3], 1, make([]byte, 64)))
	}
	bufs := make([][]byte, len(pkts))
	for i := range pkts {
		bufs[i] = make([]byte, len(pkts[i]))
	}
	batch := make([]nfqueue.Packet, len(pkts))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range pkts {
			copy(bufs[j], pkts[j])
			batch[j] = nfqueue.Packet{Hook: hookPrerouting, Data: bufs[j]}
		}
		h.e.HandleBatch(batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pkts)), "ns/pkt")
}
