package lab

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a process the lab started inside a namespace. Its stdout and
// stderr are kept line by line.
type Proc struct {
	Name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *lineBuf
	stderr *lineBuf
	done   chan struct{}
	err    error // valid after done
}

// Spawn starts args inside namespace ns. The lab kills it on Close at the
// latest; it also dies with the test process (PR_SET_PDEATHSIG).
func (l *Lab) Spawn(ns, name string, args ...string) (*Proc, error) {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("lab: spawn %s: lab closed", name)
	}
	p, err := StartProcess(name, append([]string{"ip", "netns", "exec", ns}, args...)...)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p, nil
}

// StartProcess starts argv in its own process group, keeping its output
// line by line; it dies with the test process (PR_SET_PDEATHSIG). The
// caller stops it (test/openwrt starts its bed's daemons with it).
func StartProcess(name string, argv ...string) (*Proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	p := &Proc{Name: name, cmd: cmd, stdout: newLineBuf(), stderr: newLineBuf(), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	p.stdin = in
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab: start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		p.stdout.close()
		p.stderr.close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id (`ip netns exec` execs the command, so it is the
// command's own pid).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and its error if so.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Wait waits up to timeout for the process to exit.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%s: still running after %v", p.Name, timeout)
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error {
	if ok, _ := p.Exited(); ok {
		return fmt.Errorf("%s: already exited", p.Name)
	}
	return p.cmd.Process.Signal(sig)
}

// Stop sends SIGTERM, waits up to timeout, then kills the process group.
// It returns the exit error of the process (nil for exit status 0).
func (p *Proc) Stop(timeout time.Duration) error {
	_ = p.Signal(syscall.SIGTERM)
	if err := p.Wait(timeout); err == nil || isExitErr(err) {
		return err
	}
	p.Kill()
	return fmt.Errorf("%s: did not exit within %v of SIGTERM; killed", p.Name, timeout)
}

// Kill kills the process group and waits briefly for it.
func (p *Proc) Kill() {
	if ok, _ := p.Exited(); ok {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
	_ = p.Wait(5 * time.Second)
}

func isExitErr(err error) bool {
	_, ok := err.(*exec.ExitError)
	return ok
}

// WriteLine writes s and a newline to the process's stdin.
func (p *Proc) WriteLine(s string) error {
	_, err := io.WriteString(p.stdin, s+"\n")
	return err
}

// Stdout returns the stdout lines so far.
func (p *Proc) Stdout() []string { return p.stdout.lines() }

// Stderr returns the stderr lines so far.
func (p *Proc) Stderr() []string { return p.stderr.lines() }

// StdoutLen and StderrLen count lines so far (use as "since" marks).
func (p *Proc) StdoutLen() int { return p.stdout.len() }
func (p *Proc) StderrLen() int { return p.stderr.len() }

// WaitStdout waits up to timeout for a stdout line at index >= since for
// which match is true, and returns it.
func (p *Proc) WaitStdout(since int, timeout time.Duration, match func(string) bool) (string, error) {
	return p.stdout.wait(p.Name+" stdout", since, timeout, match)
}

// WaitStderr is WaitStdout for stderr.
func (p *Proc) WaitStderr(since int, timeout time.Duration, match func(string) bool) (string, error) {
	return p.stderr.wait(p.Name+" stderr", since, timeout, match)
}

// lineBuf is an io.Writer that keeps complete lines and wakes waiters.
type lineBuf struct {
	mu      sync.Mutex
	partial []byte
	all     []string
	changed chan struct{}
	closed  bool
}

func newLineBuf() *lineBuf { return &lineBuf{changed: make(chan struct{})} }

func (b *lineBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.partial = append(b.partial, p...)
	added := false
	for {
		i := bytes.IndexByte(b.partial, '\n')
		if i < 0 {
			break
		}
		b.all = append(b.all, string(b.partial[:i]))
		b.partial = b.partial[i+1:]
		added = true
	}
	if added {
		close(b.changed)
		b.changed = make(chan struct{})
	}
	return len(p), nil
}

func (b *lineBuf) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.partial) > 0 {
		b.all = append(b.all, string(b.partial))
		b.partial = nil
	}
	b.closed = true
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *lineBuf) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.all...)
}

func (b *lineBuf) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.all)
}

func (b *lineBuf) wait(what string, since int, timeout time.Duration, match func(string) bool) (string, error) {
	timeout = Scale(timeout)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		for i := since; i < len(b.all); i++ {
			if match(b.all[i]) {
				line := b.all[i]
				b.mu.Unlock()
				return line, nil
			}
		}
		if since < len(b.all) {
			since = len(b.all)
		}
		ch, closed := b.changed, b.closed
		b.mu.Unlock()
		if closed {
			return "", fmt.Errorf("%s: closed without a matching line", what)
		}
		select {
		case <-ch:
		case <-deadline.C:
			return "", fmt.Errorf("%s: no matching line within %v", what, timeout)
		}
	}
}

// Contains returns a matcher for lines containing every one of subs.
func Contains(subs ...string) func(string) bool {
	return func(line string) bool {
		for _, s := range subs {
			if !strings.Contains(line, s) {
				return false
			}
		}
		return true
	}
}

// Scale stretches a functional time bound by $VPNPT_TIME_SCALE (default 1):
// the QEMU architecture guests run under TCG emulation, several times slower
// than this host, and set it (test/qemu/guest/labguest.sh).
func Scale(d time.Duration) time.Duration {
	if f, err := strconv.ParseFloat(os.Getenv("VPNPT_TIME_SCALE"), 64); err == nil && f >= 1 && f <= 20 {
		return time.Duration(float64(d) * f)
	}
	return d
}
