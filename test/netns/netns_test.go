//go:build linux

package netns

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testTimeout bounds every network step of these tests.
const testTimeout = 5 * time.Second

// listenIn opens a TCP listener inside h's namespace (on an OS thread moved
// there for good).
func listenIn(t *testing.T, h *Host, addr string) net.Listener {
	t.Helper()
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		f, err := os.Open(nsRunDir + "/" + h.NS)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, err}
			return
		}
		ln, err := net.Listen("tcp", addr)
		ch <- result{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.ln.Close() })
	return r.ln
}

func TestBed(t *testing.T) {
	b := New(t, 2)
	a, c := b.Hosts[0], b.Hosts[1]
	ln := listenIn(t, c, net.JoinHostPort(c.IP, "0"))
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") }))
	lo := listenIn(t, c, "127.0.0.1:0")
	go http.Serve(lo, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "loopback") }))

	cases := []struct {
		name string
		from *Host
		url  string
		want string
	}{
		{"across the bridge", a, "http://" + ln.Addr().String() + "/", "hello"},
		{"the namespace's own loopback", c, "http://" + lo.Addr().String() + "/", "loopback"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.from.HTTPClient(testTimeout).Get(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if string(body) != tc.want {
				t.Errorf("got %q, want %q", body, tc.want)
			}
		})
	}

	t.Run("sent bytes count what crossed the bridge", func(t *testing.T) {
		before, err := c.SentBytes()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := a.HTTPClient(testTimeout).Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		after, err := c.SentBytes()
		if err != nil {
			t.Fatal(err)
		}
		if after-before < int64(len("hello")) {
			t.Errorf("the server's host sent %d bytes for an HTTP answer", after-before)
		}
	})

	t.Run("the root namespace cannot reach the bed", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var d net.Dialer
		if c, err := d.DialContext(ctx, "tcp", ln.Addr().String()); err == nil {
			c.Close()
			t.Error("dialled the bed from the root namespace")
		}
	})

	t.Run("shape", func(t *testing.T) {
		if err := a.Shape(Shape{Rate: 1 << 20}); err != nil {
			t.Fatal(err)
		}
		if err := a.Shape(Shape{}); err != nil {
			t.Fatal(err)
		}
	})

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(nsRunDir + "/" + a.NS); err == nil {
		t.Errorf("namespace %s still there after Close", a.NS)
	}
}
