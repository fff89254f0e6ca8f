//go:build linux

package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds of RunPaused.
const (
	// pausedWait bounds the wait for a command to block writing stdout.
	pausedWait = 2 * time.Minute
	// pausedPoll is how often RunPaused looks whether it has.
	pausedPoll = 10 * time.Millisecond
	// pipeChunk fills the stdout pipe in pieces of one page.
	pipeChunk = 4096
	// tcpListen is the state /proc/net/tcp gives a listening socket.
	tcpListen = "0A"
)

// RunPaused runs an allmende command whose stdout is a pipe filled to the
// brim, so the command stops at its first write there with everything it
// opened to get that far still open. Once it waits in that write, inspect
// is called with its process ID; then the pipe is drained and the
// command's outcome returned. A command that exits without writing fails
// the test.
func (n *Node) RunPaused(inspect func(pid int), args ...string) Result {
	n.t.Helper()
	r, w, filled, err := fullPipe()
	if err != nil {
		n.t.Fatalf("stdout pipe: %v", err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), pausedWait)
	defer cancel()
	cmd := n.command(ctx, args...)
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &errb
	if err := cmd.Start(); err != nil {
		w.Close()
		n.t.Fatalf("start %v: %v", args, err)
	}
	w.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	paused := Poll(pausedWait, pausedPoll, func() bool { return writingFD(cmd.Process.Pid, 1) })
	if !paused {
		cancel()
		n.t.Fatalf("allmende %s never wrote to stdout (stderr: %s)", strings.Join(args, " "), errb.String())
	}
	inspect(cmd.Process.Pid)
	out, rerr := io.ReadAll(r)
	err = <-exited
	res := Result{Stdout: string(out[min(filled, len(out)):]), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case rerr != nil:
		n.t.Fatalf("read stdout of %v: %v", args, rerr)
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
	case err != nil:
		n.t.Fatalf("run %v: %v", args, err)
	}
	return res
}

// fullPipe makes a pipe and fills it until a write would block; it
// returns both ends (blocking again) and the bytes in it.
func fullPipe() (r, w *os.File, filled int, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, nil, 0, err
	}
	r, w = os.NewFile(uintptr(p[0]), "stdout-r"), os.NewFile(uintptr(p[1]), "stdout-w")
	// Pages first, then single bytes into the last page.
	for _, size := range []int{pipeChunk, 1} {
		chunk := make([]byte, size)
		for {
			k, err := unix.Write(p[1], chunk)
			if errors.Is(err, unix.EAGAIN) {
				break
			}
			if err != nil {
				r.Close()
				w.Close()
				return nil, nil, 0, err
			}
			filled += k
		}
	}
	if err := errors.Join(unix.SetNonblock(p[0], false), unix.SetNonblock(p[1], false)); err != nil {
		r.Close()
		w.Close()
		return nil, nil, 0, err
	}
	return r, w, filled, nil
}

// writingFD reports whether a thread of process pid is in a write(2) to fd
// (from /proc/<pid>/task/*/syscall: the call's number, then its
// arguments in hex).
func writingFD(pid, fd int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/syscall", pid))
	for _, t := range tasks {
		raw, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		f := strings.Fields(string(raw))
		if len(f) > 1 && f[0] == strconv.Itoa(syscall.SYS_WRITE) && f[1] == "0x"+strconv.FormatInt(int64(fd), 16) {
			return true
		}
	}
	return false
}

// Socket is a TCP or UDP socket a process holds, as /proc/<pid>/net/*
// lists it.
type Socket struct {
	// Proto is tcp, tcp6, udp or udp6.
	Proto string
	// Local and Remote are address:port in /proc's hex notation.
	Local, Remote string
	// State is the socket state in hex ("0A" is TCP's LISTEN).
	State string
}

// Listening reports whether s takes connections or datagrams from
// anyone: a TCP socket in LISTEN, or a UDP socket with no peer.
func (s Socket) Listening() bool {
	if strings.HasPrefix(s.Proto, "tcp") {
		return s.State == tcpListen
	}
	return strings.HasSuffix(s.Remote, ":0000")
}

// String implements fmt.Stringer.
func (s Socket) String() string {
	return fmt.Sprintf("%s %s -> %s state %s", s.Proto, s.Local, s.Remote, s.State)
}

// InetSockets lists the TCP and UDP sockets (IPv4 and IPv6) process pid
// has open: the socket inodes among its file descriptors, looked up in
// the socket tables of its network namespace.
func InetSockets(pid int) ([]Socket, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	var out []Socket
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, proto))
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(raw), "\n")[1:] {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
			f := strings.Fields(line)
			if len(f) > 9 && inodes[f[9]] {
				out = append(out, Socket{Proto: proto, Local: f[1], Remote: f[2], State: f[3]})
			}
		}
	}
	return out, nil
}
