package node

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/test/harness"
)

// Sizes of TestSwarmRoom.
const (
	// roomMachines fetch roomModel at once from a seeder whose uplink is
	// roomUplink, a tenth of what loopback carries here even under -race.
	roomMachines = 6
	roomModel    = 24 << 20
	roomUplink   = 8 << 20
	// roomMaxMirror is the most the seeder may send, in models: the
	// issue's target (2) with the room's fetches in flight at the end.
	roomMaxMirror = 2.0
	// roomMaxStore bounds a machine's store beside its fetched model: the
	// leaves live in the output file alone (no second copy).
	roomMaxStore = roomModel / 4
)

// TestSwarmRoom: a room of in-process nodes, all connected, fetches one
// model at once from a super-seeding seeder behind a slow uplink. Every
// machine gets the right bytes, the seeder sends each piece about once
// (at most roomMaxMirror models), and the machines send each other the
// rest: what they sent together is at least the models they got that
// the seeder did not send.
func TestSwarmRoom(t *testing.T) {
	ctx := context.Background()
	seeder := newTestNode(t, func(c *Config) { c.BandwidthUp = roomUplink; c.SuperSeed = true })
	defer seeder.Close()
	src := filepath.Join(t.TempDir(), "model.bin")
	harness.WriteRandomFile(t, src, roomModel, 7)
	added, err := seeder.Add(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*Node{seeder}
	var room []*Node
	for range roomMachines {
		n := newTestNode(t)
		defer n.Close()
		for _, other := range nodes {
			id, _ := other.ID(ctx)
			if err := n.Connect(ctx, id.Addrs[0]); err != nil {
				t.Fatal(err)
			}
		}
		nodes = append(nodes, n)
		room = append(room, n)
	}
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i, n := range room {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := filepath.Join(t.TempDir(), "model.bin")
			if _, err := n.Fetch(ctx, api.FetchRequest{Ref: added.CID, Out: out}, nil); err != nil {
				t.Errorf("machine %d: %v", i, err)
				return
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
				t.Errorf("machine %d: the model differs", i)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	st, _ := seeder.Stats(ctx)
	var roomSent, most uint64
	for _, n := range room {
		s, _ := n.Stats(ctx)
		roomSent += s.BytesSent
		du, err := n.store.DiskUsage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		most = max(most, du)
	}
	t.Logf("the largest store of a machine: %d bytes beside its %d-byte model", most, roomModel)
	if most > roomMaxStore {
		t.Errorf("a machine's store holds %d bytes beside its model, want at most %d (the bytes once, in the output)", most, roomMaxStore)
	}
	mirrorX := float64(st.BytesSent) / roomModel
	t.Logf("seeder sent %.2f models, the room %.2f models to %d machines", mirrorX, float64(roomSent)/roomModel, roomMachines)
	if mirrorX > roomMaxMirror {
		t.Errorf("the seeder sent %.2f models, want at most %.1f", mirrorX, roomMaxMirror)
	}
	if need := roomMachines*roomModel - int(st.BytesSent); int(roomSent) < need {
		t.Errorf("the room sent %d bytes, want at least %d (what the seeder did not)", roomSent, need)
	}
}

// churnAfter is when, in TestSwarmRoomChurn, one machine leaves and
// another joins.
const churnAfter = time.Second

// TestSwarmRoomChurn: while a room fetches from a super-seeding seeder,
// one machine goes away (its node closes: streams reset, requests cut)
// and a new one joins. Nobody else stalls: every other machine gets the
// right bytes, and the seeder still sends at most roomMaxMirror models.
func TestSwarmRoomChurn(t *testing.T) {
	ctx := context.Background()
	seeder := newTestNode(t, func(c *Config) { c.BandwidthUp = roomUplink; c.SuperSeed = true })
	defer seeder.Close()
	src := filepath.Join(t.TempDir(), "model.bin")
	harness.WriteRandomFile(t, src, roomModel, 8)
	added, err := seeder.Add(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*Node{seeder}
	gone := make(map[*Node]bool)
	join := func() *Node {
		n := newTestNode(t)
		t.Cleanup(func() {
			if !gone[n] {
				n.Close()
			}
		})
		for _, other := range nodes {
			if gone[other] {
				continue
			}
			id, _ := other.ID(ctx)
			if err := n.Connect(ctx, id.Addrs[0]); err != nil {
				t.Fatal(err)
			}
		}
		nodes = append(nodes, n)
		return n
	}
	var wg sync.WaitGroup
	fetch := func(ctx context.Context, i int, n *Node, mustFinish bool) <-chan struct{} {
		ended := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(ended)
			out := filepath.Join(t.TempDir(), "model.bin")
			_, err := n.Fetch(ctx, api.FetchRequest{Ref: added.CID, Out: out}, nil)
			switch {
			case err != nil && mustFinish:
				t.Errorf("machine %d: %v", i, err)
			case err == nil:
				if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
					t.Errorf("machine %d: the model differs", i)
				}
			}
		}()
		return ended
	}
	var room []*Node
	for range roomMachines - 1 {
		room = append(room, join())
	}
	start := time.Now()
	leaving, leave := context.WithCancel(ctx)
	left := fetch(leaving, 0, room[0], false)
	for i, n := range room[1:] {
		fetch(ctx, i+1, n, true)
	}
	time.Sleep(churnAfter)
	// One leaves mid-fetch: its fetch is cut, its node closes (streams
	// reset, requests to it fail).
	leave()
	<-left
	gone[room[0]] = true
	room[0].Close()
	fetch(ctx, len(room), join(), true)
	wg.Wait()
	st, _ := seeder.Stats(ctx)
	mirrorX := float64(st.BytesSent) / roomModel
	t.Logf("with one machine gone and one joined: done in %s, seeder sent %.2f models", time.Since(start).Round(time.Millisecond), mirrorX)
	if mirrorX > roomMaxMirror {
		t.Errorf("the seeder sent %.2f models, want at most %.1f", mirrorX, roomMaxMirror)
	}
}
