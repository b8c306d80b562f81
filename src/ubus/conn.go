package ubus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/unixsock"
)

// DefaultSocket is ubusd's socket on OpenWrt.
const DefaultSocket = "/var/run/ubus/ubus.sock"

// Method is one method of an object.
type Method struct {
	Name string
	// Params maps each argument to its blobmsg type (the signature `ubus
	// -v list` shows).
	Params map[string]int
	// Handler answers a call: a reply that encodes as a JSON object, or
	// an error (Error gives it a ubus status code).
	Handler func(args map[string]any) (any, error)
}

// Object is a ubus object this process serves.
type Object struct {
	Name    string
	Methods []Method
}

// Error is an error with a ubus status code.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// Conn is one connection to ubusd.
type Conn struct {
	nc      *os.File
	peer    uint32 // our client id, from ubusd's hello
	wmu     sync.Mutex
	mu      sync.Mutex
	seq     uint16
	pending map[uint16]chan *Msg
	objects map[uint32]*Object
	closed  chan struct{}
	err     error
}

// Dial connects to ubusd and reads its hello.
func Dial(path string) (*Conn, error) {
	nc, err := unixsock.Dial(path) // not package net (see status.DialUnix)
	if err != nil {
		return nil, err
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, err := ReadMsg(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("ubus: read hello: %w", err)
	}
	if m.Type != MsgHello {
		nc.Close()
		return nil, fmt.Errorf("ubus: first message has type %d, not hello", m.Type)
	}
	nc.SetReadDeadline(time.Time{})
	c := &Conn{nc: nc, peer: m.Peer, pending: map[uint16]chan *Msg{}, objects: map[uint32]*Object{}, closed: make(chan struct{})}
	go c.readLoop()
	return c, nil
}

// Close ends the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// Done is closed when the connection is gone; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.closed }

// Err is why the connection ended.
func (c *Conn) Err() error {
	<-c.closed
	return c.err
}

func (c *Conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.nc.Write(b)
	return err
}

func (c *Conn) readLoop() {
	defer close(c.closed)
	for {
		m, err := ReadMsg(c.nc)
		if err != nil {
			c.err = err
			c.nc.Close()
			c.mu.Lock()
			for _, ch := range c.pending {
				close(ch)
			}
			c.pending = map[uint16]chan *Msg{}
			c.mu.Unlock()
			return
		}
		switch m.Type {
		case MsgInvoke:
			c.mu.Lock()
			o := c.objects[m.Uint32(AttrObjID)]
			c.mu.Unlock()
			// Handlers may take seconds (reload): the read loop must go
			// on, replies to our own requests come through it.
			go c.invoke(o, m)
		case MsgData, MsgStatus:
			c.mu.Lock()
			ch := c.pending[m.Seq]
			c.mu.Unlock()
			if ch != nil {
				select {
				case ch <- m:
				default:
				}
			}
		}
	}
}

// request sends a message and collects the DATA replies up to its STATUS.
func (c *Conn) request(typ uint8, peer uint32, attrs ...attr) ([]*Msg, int, error) {
	ch := make(chan *Msg, 16)
	c.mu.Lock()
	c.seq++
	seq := c.seq
	c.pending[seq] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, seq)
		c.mu.Unlock()
	}()
	if err := c.write(EncodeMsg(typ, seq, peer, attrs...)); err != nil {
		return nil, 0, err
	}
	var data []*Msg
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return nil, 0, errors.New("ubus: connection lost")
			}
			if m.Type == MsgData {
				data = append(data, m)
				continue
			}
			return data, int(m.Uint32(AttrStatus)), nil
		case <-t.C:
			return nil, 0, errors.New("ubus: no reply from ubusd in 30 s")
		}
	}
}

// Register adds an object; ubusd gives it an id.
func (c *Conn) Register(o *Object) (uint32, error) {
	var sig []byte
	for _, m := range o.Methods {
		var params []Field
		for name, typ := range m.Params {
			params = append(params, Field{Name: name, Type: TypeInt32, Value: int32(typ)})
		}
		sig = AppendField(sig, Field{Name: m.Name, Type: TypeTable, Value: params})
	}
	data, st, err := c.request(MsgAddObject, 0, str(AttrObjPath, o.Name), nested(AttrSignature, sig))
	if err != nil {
		return 0, err
	}
	if st != StatusOK {
		return 0, fmt.Errorf("ubus: add object %s: %s", o.Name, StatusText(st))
	}
	for _, m := range data {
		if id := m.Uint32(AttrObjID); id != 0 {
			c.mu.Lock()
			c.objects[id] = o
			c.mu.Unlock()
			return id, nil
		}
	}
	return 0, fmt.Errorf("ubus: add object %s: no id in the reply", o.Name)
}

// Send broadcasts an event, as `ubus send <id> <data>` does; `ubus listen`
// receives it.
func (c *Conn) Send(id string, data any) error {
	b, err := Marshal(data)
	if err != nil {
		return err
	}
	var inner []byte
	inner = AppendField(inner, Field{Name: "id", Type: TypeString, Value: id})
	inner = AppendField(inner, Field{Name: "data", Type: TypeTable, Value: mustFields(b)})
	_, st, err := c.request(MsgInvoke, systemObjectEvent, u32(AttrObjID, systemObjectEvent), str(AttrMethod, "send"), nested(AttrData, inner))
	if err != nil {
		return err
	}
	if st != StatusOK {
		return fmt.Errorf("ubus: send %s: %s", id, StatusText(st))
	}
	return nil
}

func mustFields(b []byte) []Field {
	fs, _ := ParseFields(b) // b is our own encoding
	return fs
}

// Call invokes a method of another object, by path: the client side, used
// by tests and the CLI. It returns the reply as JSON-ready values.
func (c *Conn) Call(path, method string, args any) (map[string]any, int, error) {
	data, st, err := c.request(MsgLookup, 0, str(AttrObjPath, path))
	if err != nil {
		return nil, 0, err
	}
	if st != StatusOK || len(data) == 0 {
		return nil, StatusNotFound, fmt.Errorf("ubus: object %s: %s", path, StatusText(StatusNotFound))
	}
	id := data[0].Uint32(AttrObjID)
	b, err := Marshal(args)
	if err != nil {
		return nil, 0, err
	}
	data, st, err = c.request(MsgInvoke, id, u32(AttrObjID, id), str(AttrMethod, method), nested(AttrData, b))
	if err != nil {
		return nil, 0, err
	}
	var out map[string]any
	for _, m := range data {
		fs, err := ParseFields(m.Attrs[AttrData])
		if err != nil {
			return nil, st, err
		}
		out, _ = ToJSON(fs, true).(map[string]any)
	}
	if st != StatusOK {
		return out, st, &Error{Status: st, Msg: StatusText(st)}
	}
	return out, st, nil
}

func (c *Conn) invoke(o *Object, m *Msg) {
	objID := m.Uint32(AttrObjID)
	reply := func(v any, st int) {
		if v != nil {
			if b, err := Marshal(v); err == nil {
				c.write(EncodeMsg(MsgData, m.Seq, m.Peer, u32(AttrObjID, objID), nested(AttrData, b)))
			}
		}
		if !m.Has[AttrNoReply] || len(m.Attrs[AttrNoReply]) == 0 || m.Attrs[AttrNoReply][0] == 0 {
			c.write(EncodeMsg(MsgStatus, m.Seq, m.Peer, u32(AttrStatus, uint32(st)), u32(AttrObjID, objID)))
		}
	}
	if o == nil {
		reply(nil, StatusNotFound)
		return
	}
	name := m.String(AttrMethod)
	var meth *Method
	for i := range o.Methods {
		if o.Methods[i].Name == name {
			meth = &o.Methods[i]
		}
	}
	if meth == nil {
		reply(map[string]any{"error": fmt.Sprintf("%s has no method %q", o.Name, name)}, StatusMethodNotFound)
		return
	}
	fs, err := ParseFields(m.Attrs[AttrData])
	if err != nil {
		reply(map[string]any{"error": "arguments: " + err.Error()}, StatusInvalidArgument)
		return
	}
	args, _ := ToJSON(fs, true).(map[string]any)
	v, err := meth.Handler(args)
	if err != nil {
		st := StatusUnknownError
		var ue *Error
		if errors.As(err, &ue) {
			st = ue.Status
		}
		reply(map[string]any{"error": err.Error()}, st)
		return
	}
	reply(v, StatusOK)
}

// StatusText is ubus's wording of a status code (ubus_strerror).
func StatusText(st int) string {
	texts := []string{"Success", "Invalid command", "Invalid argument", "Method not found", "Not found",
		"No response", "Permission denied", "Request timed out", "Operation not supported",
		"Unknown error", "Connection failed"}
	if st >= 0 && st < len(texts) {
		return texts[st]
	}
	return fmt.Sprintf("status %d", st)
}

// Serve keeps obj registered on the ubusd at path until ctx ends,
// reconnecting when ubusd restarts, and sends each event from events
// (name, data) while connected. It returns only when ctx ends.
func Serve(ctx context.Context, path string, obj *Object, events <-chan [2]any, log *kvlog.Logger) {
	backoff := 500 * time.Millisecond
	warned := false
	for ctx.Err() == nil {
		c, err := Dial(path)
		if err == nil {
			_, err = c.Register(obj)
			if err != nil {
				c.Close()
			}
		}
		if err != nil {
			if !warned {
				log.Warn("ubus not reachable, retrying", "socket", path, "err", err)
				warned = true
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			if backoff < 5*time.Second {
				backoff *= 2
			}
			continue
		}
		log.Info("ubus object registered", "object", obj.Name, "socket", path)
		warned, backoff = false, 500*time.Millisecond
	pump:
		for {
			select {
			case <-ctx.Done():
				c.Close()
				return
			case <-c.Done():
				log.Warn("ubus connection lost, reconnecting", "err", c.Err())
				break pump
			case e := <-events:
				if err := c.Send(e[0].(string), e[1]); err != nil {
					log.Warn("ubus event not sent", "event", e[0], "err", err)
				}
			}
		}
	}
}
