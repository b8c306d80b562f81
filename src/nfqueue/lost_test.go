package nfqueue

import (
	"reflect"
	"testing"
)

// TestRememberLost: when single verdicts cannot be sent, their packet IDs are
// kept (up to the cap) so the next round drops them; a batch verdict is not
// remembered (the next batch covers its packets).
func TestRememberLost(t *testing.T) {
	q := &Queue{lost: make([]uint32, 0, 3)}
	mark := uint32(7)
	var b []byte
	b = appendVerdict(b, 4200, 5, nfAccept, &mark, []byte{1, 2, 3})
	b = appendBatchVerdict(b, 4200, 9, nfAccept)
	b = appendVerdict(b, 4200, 6, nfDrop, nil, nil)
	q.rememberLost(b)
	if want := []uint32{5, 6}; !reflect.DeepEqual(q.lost, want) {
		t.Fatalf("lost = %v, want %v", q.lost, want)
	}
	for id := uint32(10); id < 20; id++ {
		q.rememberLost(appendVerdict(nil, 4200, id, nfAccept, nil, nil))
	}
	if len(q.lost) != 3 {
		t.Errorf("lost grew past its cap: %v", q.lost)
	}
	q.rememberLost([]byte{1, 2, 3}) // garbage: ignored
}
