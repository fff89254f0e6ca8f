//go:build linux

package e2e

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/allmende/allmende/test/harness"
	"github.com/allmende/allmende/test/netns"
)

// The classroom scenario (issue 6): one mirror whose link is limited to
// roomRate, roomClients classroom machines that fetch one model.
const (
	roomClients = 8
	// roomRate is R, what tc lets the mirror send (bytes per second).
	roomRate = 8 << 20
	// roomSize is the model; ALLMENDE_SLOW_TESTS=1 moves the 512 MiB the
	// issue names instead.
	roomSize     = 48 << 20
	roomSizeSlow = 512 << 20
	roomRateSlow = 32 << 20
	// roomMaxRatio: 8 clients must finish in well under 8 times the time
	// one client takes alone.
	roomMaxRatio = 4
	// roomStall fails a fetch on the LAN that gets no block for this long.
	roomStall = 30 * time.Second
	// mirrorHTTPPort is where the mirror's HTTP side listens in its
	// namespace.
	mirrorHTTPPort = 8080
)

// TestClassroom: 8 machines in a room get a model from a mirror whose
// uplink is limited to R. Over allmende they fetch from the mirror and from
// each other, so all 8 finish in far less than 8 times one client's time;
// the same 8 pulling over plain HTTP from the mirror share its R.
//
// ALLMENDE_SLOW_TESTS=1 moves the 512 MiB model the issue names, over a
// faster mirror link so that the HTTP comparison ends in minutes. The test
// takes 1.5 to 4 minutes, so it runs only with ALLMENDE_ROOM_TEST=1 (also
// because a rare stall, a fetch that gets no root block from connected
// peers, is still open; see the notes of issues 4 and 6).
func TestClassroom(t *testing.T) {
	if os.Getenv("ALLMENDE_ROOM_TEST") == "" {
		t.Skip("set ALLMENDE_ROOM_TEST=1 to run the classroom scenario (1.5-4 min)")
	}
	size, rate := int64(roomSize), int64(roomRate)
	if os.Getenv("ALLMENDE_SLOW_TESTS") != "" {
		size, rate = roomSizeSlow, roomRateSlow
	}
	bed := netns.New(t, roomClients+1)
	mh := bed.Hosts[0]
	mdns := "ALLMENDE_MDNS_ENABLED=true"
	mirror := lanNode(t, mh, mdns, fmt.Sprintf("ALLMENDE_MIRROR_ADDR=%s:%d", mh.IP, mirrorHTTPPort), "ALLMENDE_MIRROR_ALLOW="+netns.SubnetPrefix+".0/24")
	dir := filepath.Join(t.TempDir(), "tiny-llama")
	harness.WriteRandomFile(t, filepath.Join(dir, "model.bin"), size, 31)
	var imp struct {
		Root string `json:"root"`
	}
	mirror.JSON(&imp, "import", dir, "--name", "school/tiny-llama", "--json")
	if err := mh.Shape(netns.Shape{Rate: rate}); err != nil {
		t.Fatal(err)
	}
	var clients []*harness.Node
	for _, h := range bed.Hosts[1:] {
		clients = append(clients, lanNode(t, h, mdns, "ALLMENDE_FETCH_TIMEOUT="+roomStall.String(), "ALLMENDE_LOG_LEVEL=debug"))
	}
	for _, c := range clients {
		waitPeers(t, c, roomClients) // the mirror and the 7 others
	}

	fetch := func(c *harness.Node) error {
		out := filepath.Join(t.TempDir(), "model")
		if r := c.Run("fetch", imp.Root, "-o", out); r.Code != 0 {
			return fmt.Errorf("fetch exit %d: %s\nits daemon's log:\n%s", r.Code, r.Stderr, c.Log())
		}
		harness.AssertSameTree(t, dir, out)
		return nil
	}
	// One client alone, then it forgets the model again.
	start := time.Now()
	if err := fetch(clients[0]); err != nil {
		t.Fatal(err)
	}
	one := time.Since(start)
	clients[0].MustRun("rm", imp.Root)
	clients[0].MustRun("gc")

	all := timeAll(t, clients, fetch)
	url := fmt.Sprintf("http://%s:%d/school/tiny-llama/resolve/main/model.bin", mh.IP, mirrorHTTPPort)
	httpAll := timeAll(t, clients, func(c *harness.Node) error {
		h := bed.Hosts[1+indexOf(clients, c)]
		resp, err := h.HTTPClient(10 * time.Minute).Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil && n != size {
			err = fmt.Errorf("HTTP download: %d bytes, want %d", n, size)
		}
		return err
	})
	mib := float64(size) / (1 << 20)
	t.Logf("classroom, %.0f MiB model, mirror uplink R = %d MiB/s:", mib, rate>>20)
	t.Logf("  1 client alone over allmende:   %6.1f s", one.Seconds())
	t.Logf("  %d clients over allmende:        %6.1f s = %.2f x one client", roomClients, all.Seconds(), all.Seconds()/one.Seconds())
	t.Logf("  %d clients over plain HTTP:      %6.1f s = %.2f x one client; allmende is %.1f x faster",
		roomClients, httpAll.Seconds(), httpAll.Seconds()/one.Seconds(), httpAll.Seconds()/all.Seconds())
	if ratio := all.Seconds() / one.Seconds(); ratio > roomMaxRatio {
		t.Errorf("%d clients took %.2f x one client's time, want at most %d x", roomClients, ratio, roomMaxRatio)
	}
}

// timeAll runs f for every client at once and returns the time until the
// last one finished.
func timeAll(t *testing.T, clients []*harness.Node, f func(*harness.Node) error) time.Duration {
	t.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(c); err != nil {
				t.Errorf("client %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

func indexOf(clients []*harness.Node, c *harness.Node) int {
	for i, x := range clients {
		if x == c {
			return i
		}
	}
	return -1
}
