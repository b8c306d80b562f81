package unixsock

import (
	"errors"
	"io"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestDialListenAccept(t *testing.T) {
	path := t.TempDir() + "/s"
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		c.Write([]byte("hello"))
		b, _ := io.ReadAll(c)
		got <- string(b)
	}()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "hello" {
		t.Fatalf("read %q, %v", b, err)
	}
	c.Write([]byte("back"))
	// No data before the deadline: it ends the read.
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(b); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past the deadline: %v", err)
	}
	c.Close()
	if s := <-got; s != "back" {
		t.Errorf("server read %q", s)
	}
	// Close wakes a blocked Accept.
	done := make(chan error, 1)
	go func() { _, err := l.Accept(); done <- err }()
	time.Sleep(20 * time.Millisecond)
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("accept after close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake Accept")
	}
	// Nobody listens now: refused, not a hang.
	if _, err := Dial(path); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial a dead socket: %v", err)
	}
	if _, err := Dial(t.TempDir() + "/none"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dial a missing socket: %v", err)
	}
}
