// Package swarmsim simulates a room of machines fetching one root from a
// mirror with a slow uplink, running the piece policy of package swarm
// (the same Picker and Seeder the real fetcher uses) in virtual time: a
// discrete-event simulation with no network and no clock, fast enough for
// a thousand machines. It predicts how long the room takes against one
// machine alone and how many bytes the mirror sends.
//
// The network model: every machine and the mirror have an uplink and a
// downlink rate; a transfer runs at the smaller of its uploader's uplink
// share and its downloader's downlink share (each split evenly among the
// transfers active on it), and each uploader serves at most UploadSlots
// transfers at once, queueing the rest in order (as a bulk server with
// bounded slots would). Requests, refusals and announcements take Latency
// to arrive. Protocol overheads (framing, HAVE bytes, handshakes) and
// congestion control are not modelled.
package swarmsim

import (
	"cmp"
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/allmende/allmende/protocol/swarm"
)

// Defaults of Config.
const (
	// DefaultPieceBytes is one leaf of the unixfs-v1-2025 profile.
	DefaultPieceBytes = swarm.DefaultPieceBytes
	// DefaultUploadSlots is the transfers a machine uploads at once.
	DefaultUploadSlots = swarm.DefaultUploadSlots
	// DefaultLatency is a one-way trip across a switched LAN.
	DefaultLatency = 500 * time.Microsecond
	// DefaultCrashDetect is how long peers take to notice a machine that
	// vanished without closing its connections (libp2p's keep-alives and
	// QUIC's idle timeout are of this order).
	DefaultCrashDetect = 20 * time.Second
	// DefaultTick is how often each machine checks for silent peers and
	// the mirror for stale offers.
	DefaultTick = 250 * time.Millisecond
	// DefaultLimit stops a run that has not ended in this much virtual
	// time; machines still fetching then count as stalled.
	DefaultLimit = time.Hour
)

// Machine is one classroom machine.
type Machine struct {
	// Up and Down are its link rates in bytes per second.
	Up, Down float64
	// Join is when it starts fetching; Leave, if positive, when it leaves.
	Join, Leave time.Duration
	// Crash makes it leave without closing its connections: its peers
	// notice only after Config.CrashDetect.
	Crash bool
}

// Config describes one run.
type Config struct {
	// Machines are the fetchers.
	Machines []Machine
	// MirrorUp is the mirror's uplink R in bytes per second.
	MirrorUp float64
	// ModelBytes is the size of the root's leaves; PieceBytes the size of
	// a piece (the last one may be shorter).
	ModelBytes, PieceBytes int64
	// SuperSeed makes the mirror super-seed (swarm.Seeder). Without it,
	// the mirror announces every piece and serves what it is asked.
	SuperSeed bool
	// MirrorCostly makes the fetchers treat the mirror as a costly source
	// (swarm.PeerOpts.Costly); a super-seeding mirror always is.
	MirrorCostly bool
	// Neighbors bounds the machines each machine exchanges pieces with
	// (0: all); every machine also has the mirror.
	Neighbors int
	// UploadSlots bounds each uploader's concurrent transfers.
	UploadSlots int
	// SeedSlots and OffersPerPeer configure the super-seeding mirror.
	SeedSlots, OffersPerPeer int
	// Latency, CrashDetect, Tick and Limit: see the defaults.
	Latency, CrashDetect, Tick, Limit time.Duration
	// Picker configures every fetcher (Pieces, Rand and PieceBytes are
	// set by Run).
	Picker swarm.PickerConfig
	// Seed makes a run repeatable.
	Seed uint64
}

func (c *Config) setDefaults() {
	if c.PieceBytes <= 0 {
		c.PieceBytes = DefaultPieceBytes
	}
	if c.UploadSlots <= 0 {
		c.UploadSlots = DefaultUploadSlots
	}
	if c.Latency <= 0 {
		c.Latency = DefaultLatency
	}
	if c.CrashDetect <= 0 {
		c.CrashDetect = DefaultCrashDetect
	}
	if c.Tick <= 0 {
		c.Tick = DefaultTick
	}
	if c.Limit <= 0 {
		c.Limit = DefaultLimit
	}
	if c.SuperSeed {
		c.MirrorCostly = true
	}
}

// Result is what a run measured.
type Result struct {
	// Finish is, per machine, the time from its join until it held every
	// piece; negative if it left first or never finished.
	Finish []time.Duration
	// Last is when the last machine that stayed finished (from time 0).
	Last time.Duration
	// MirrorBytes is what the mirror sent; RoomBytes what machines sent
	// each other.
	MirrorBytes, RoomBytes int64
	// WastedBytes is bytes received twice or cut off (end game duplicates,
	// transfers abandoned).
	WastedBytes int64
	// Stalled counts machines that stayed but had not finished at Limit.
	Stalled int
	// Events is the number of events simulated.
	Events int
}

// epoch is virtual time 0 as the policy sees it.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Run simulates cfg and returns what it measured.
func Run(cfg Config) (Result, error) {
	cfg.setDefaults()
	if len(cfg.Machines) == 0 || cfg.MirrorUp <= 0 || cfg.ModelBytes <= 0 {
		return Result{}, fmt.Errorf("swarmsim: need machines, a mirror rate and a model size")
	}
	for i, m := range cfg.Machines {
		if m.Up <= 0 || m.Down <= 0 {
			return Result{}, fmt.Errorf("swarmsim: machine %d has no link rate", i)
		}
		if m.Join < 0 || (m.Leave > 0 && m.Leave <= m.Join) {
			return Result{}, fmt.Errorf("swarmsim: machine %d leaves at %s, before it joins at %s", i, m.Leave, m.Join)
		}
	}
	s := newSim(cfg)
	s.run()
	return s.result(), nil
}

// event kinds.
const (
	evJoin = iota
	evLeave
	evForget  // peers notice a crashed machine
	evRequest // a request reaches its uploader
	evRefuse  // the uploader's refusal reaches the requester
	evDone    // a transfer completes (if its version is current)
	evHave    // a machine's HAVE reaches its neighbours and the mirror
	evOffer   // a super-seeder's offer (a HAVE to one peer) arrives
	evTick
)

type event struct {
	at    time.Duration
	seq   uint64
	kind  uint8
	a, b  int32 // event-specific: machine ids
	piece int32
	x     *xfer
	ver   uint32
}

type eventQueue []event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// xfer is one requested piece on its way: requested, queued at the
// uploader, then transferring.
type xfer struct {
	from, to  int32 // uploader, requester
	piece     int32
	size      float64
	remaining float64
	rate      float64
	since     time.Duration // when remaining was last settled
	ver       uint32
	active    bool
	dead      bool // cancelled, finished or abandoned
}

type reqKey struct {
	from, to, piece int32
}

// node is a machine or the mirror.
type node struct {
	id       int32
	up, down float64
	picker   *swarm.Picker[int32]
	// has is what the node holds (the picker's set for a machine).
	has       *swarm.Bitfield
	neighbors []int32
	present   bool
	joined    time.Duration
	finished  bool
	uploads   []*xfer // active
	queue     []*xfer // waiting for a slot
	downloads []*xfer // active
}

type sim struct {
	cfg    Config
	rnd    *rand.Rand
	now    time.Duration
	seq    uint64
	events eventQueue
	nodes  []*node // machines, then the mirror
	mirror int32
	seeder *swarm.Seeder[int32]
	pieces int
	// reqs are the requests in flight by (uploader, requester, piece).
	reqs    map[reqKey]*xfer
	res     Result
	waiting int // machines present or yet to join that have not finished or left
}

func newSim(cfg Config) *sim {
	n := int((cfg.ModelBytes + cfg.PieceBytes - 1) / cfg.PieceBytes)
	s := &sim{cfg: cfg, rnd: rand.New(rand.NewPCG(cfg.Seed, 0x5eed)), pieces: n, reqs: make(map[reqKey]*xfer)}
	for i, m := range cfg.Machines {
		s.nodes = append(s.nodes, &node{id: int32(i), up: m.Up, down: m.Down})
		s.schedule(event{at: m.Join, kind: evJoin, a: int32(i)})
		if m.Leave > 0 {
			s.schedule(event{at: m.Leave, kind: evLeave, a: int32(i)})
		}
	}
	s.mirror = int32(len(s.nodes))
	s.nodes = append(s.nodes, &node{id: s.mirror, up: cfg.MirrorUp, down: cfg.MirrorUp, has: swarm.FullBitfield(n), present: true})
	if cfg.SuperSeed {
		s.seeder = swarm.NewSeeder[int32](swarm.SeederConfig{Pieces: n, Rand: s.childRand(),
			Slots: cfg.SeedSlots, OffersPerPeer: cfg.OffersPerPeer})
	}
	s.res.Finish = make([]time.Duration, len(cfg.Machines))
	for i := range s.res.Finish {
		s.res.Finish[i] = -1
	}
	s.waiting = len(cfg.Machines)
	s.schedule(event{at: cfg.Tick, kind: evTick})
	return s
}

func (s *sim) childRand() *rand.Rand { return rand.New(rand.NewPCG(s.rnd.Uint64(), s.rnd.Uint64())) }

func (s *sim) schedule(e event) {
	e.seq = s.seq
	s.seq++
	heap.Push(&s.events, e)
}

// after schedules e at Latency from now.
func (s *sim) after(e event) {
	e.at = s.now + s.cfg.Latency
	s.schedule(e)
}

func (s *sim) t() time.Time { return epoch.Add(s.now) }

func (s *sim) pieceSize(x int32) float64 {
	if int64(x) == int64(s.pieces-1) {
		if r := s.cfg.ModelBytes % s.cfg.PieceBytes; r != 0 {
			return float64(r)
		}
	}
	return float64(s.cfg.PieceBytes)
}

func (s *sim) run() {
	for len(s.events) > 0 && s.waiting > 0 {
		e := heap.Pop(&s.events).(event)
		if e.at > s.cfg.Limit {
			break
		}
		s.now = e.at
		s.res.Events++
		switch e.kind {
		case evJoin:
			s.join(e.a)
		case evLeave:
			s.leave(e.a)
		case evForget:
			s.forget(e.a)
		case evRequest:
			s.request(e.x)
		case evRefuse:
			s.refused(e.x)
		case evDone:
			if e.x.ver == e.ver && !e.x.dead {
				s.complete(e.x)
			}
		case evHave:
			s.haveArrived(e.b, int(e.piece))
		case evOffer:
			s.announced(e.a, e.b, int(e.piece))
		case evTick:
			s.tick()
			s.schedule(event{at: s.now + s.cfg.Tick, kind: evTick})
		}
	}
	for i, f := range s.res.Finish {
		m := s.cfg.Machines[i]
		if f < 0 && !(m.Leave > 0 && m.Leave <= s.now) {
			s.res.Stalled++
		}
	}
}

func (s *sim) result() Result { return s.res }

// join brings machine i into the room: it meets its neighbors and the
// mirror, exchanging what they hold.
func (s *sim) join(i int32) {
	m := s.nodes[i]
	m.present, m.joined = true, s.now
	pc := s.cfg.Picker
	pc.Pieces, pc.Rand, pc.PieceBytes = s.pieces, s.childRand(), s.cfg.PieceBytes
	m.picker = swarm.NewPicker[int32](pc)
	m.has = m.picker.Have()
	for _, j := range s.pickNeighbors(i) {
		o := s.nodes[j]
		m.neighbors = append(m.neighbors, j)
		o.neighbors = append(o.neighbors, i)
		m.picker.AddPeer(j, o.has, swarm.PeerOpts{})
		o.picker.AddPeer(i, m.has, swarm.PeerOpts{})
	}
	mirrorHas := s.nodes[s.mirror].has
	if s.seeder != nil {
		mirrorHas = nil // a super-seeder announces nothing at first
		s.seeder.AddPeer(i, m.has)
	}
	m.picker.AddPeer(s.mirror, mirrorHas, swarm.PeerOpts{Costly: s.cfg.MirrorCostly})
	s.fill(m)
	s.offer()
}

// pickNeighbors chooses the present machines i exchanges pieces with.
func (s *sim) pickNeighbors(i int32) []int32 {
	var present []int32
	for _, o := range s.nodes[:s.mirror] {
		if o.present && o.id != i {
			present = append(present, o.id)
		}
	}
	k := s.cfg.Neighbors
	if k <= 0 || len(present) <= k {
		return present
	}
	s.rnd.Shuffle(len(present), func(a, b int) { present[a], present[b] = present[b], present[a] })
	// Prefer machines with room for more neighbours, so that early
	// machines do not collect every later one.
	out := present[:0:0]
	for _, j := range present {
		if len(s.nodes[j].neighbors) < 2*k {
			out = append(out, j)
		}
		if len(out) == k/2+1 {
			break
		}
	}
	return out
}

// leave takes machine i out: its transfers end; its peers forget it now or,
// after a crash, once they notice.
func (s *sim) leave(i int32) {
	m := s.nodes[i]
	if !m.present {
		return
	}
	m.present = false
	if !m.finished {
		s.waiting--
	}
	for _, x := range append(append([]*xfer{}, m.uploads...), m.queue...) {
		s.abandon(x)
	}
	for _, x := range append([]*xfer{}, m.downloads...) {
		s.abandon(x)
	}
	// Its own requests still on their way (in key order, so runs
	// repeat).
	var mine []reqKey
	for k := range s.reqs {
		if k.to == i {
			mine = append(mine, k)
		}
	}
	slices.SortFunc(mine, func(a, b reqKey) int { return cmp.Or(cmp.Compare(a.from, b.from), cmp.Compare(a.piece, b.piece)) })
	for _, k := range mine {
		s.abandon(s.reqs[k])
	}
	if s.cfg.Machines[i].Crash {
		s.schedule(event{at: s.now + s.cfg.CrashDetect, kind: evForget, a: i})
		return
	}
	s.forget(i)
}

// forget makes i's peers and the mirror drop it.
func (s *sim) forget(i int32) {
	m := s.nodes[i]
	for _, j := range m.neighbors {
		o := s.nodes[j]
		if !o.present {
			continue
		}
		o.picker.RemovePeer(i)
		s.fillStarved(o)
	}
	if s.seeder != nil {
		s.seeder.RemovePeer(i)
		s.offer()
	}
}

// fill asks each of m's peers for what its picker says.
func (s *sim) fill(m *node) {
	for _, j := range m.neighbors {
		s.ask(m, j)
	}
	s.ask(m, s.mirror)
}

func (s *sim) fillStarved(m *node) {
	for _, j := range m.picker.Starved() {
		s.ask(m, j)
	}
}

// ask sends m's next requests to peer j.
func (s *sim) ask(m *node, j int32) {
	if !m.present || m.finished {
		return
	}
	for _, x := range m.picker.Next(j, s.t()) {
		r := &xfer{from: j, to: m.id, piece: int32(x), size: s.pieceSize(int32(x))}
		r.remaining = r.size
		s.reqs[reqKey{j, m.id, int32(x)}] = r
		s.after(event{kind: evRequest, x: r})
	}
}

// request: r reaches its uploader, which queues it or refuses it.
func (s *sim) request(r *xfer) {
	if r.dead {
		return
	}
	u := s.nodes[r.from]
	if !u.present {
		return // lost: a crashed uploader; the requester's snub check acts
	}
	if !u.has.Has(int(r.piece)) {
		s.after(event{kind: evRefuse, x: r})
		return
	}
	if r.from == s.mirror && s.seeder != nil {
		s.seeder.Requested(r.to, int(r.piece))
	}
	u.queue = append(u.queue, r)
	s.startQueued(u)
}

func (s *sim) refused(r *xfer) {
	if r.dead {
		return
	}
	s.kill(r)
	m := s.nodes[r.to]
	m.picker.Failed(r.from, int(r.piece), true)
	s.ask(m, r.from)
	s.fillStarved(m)
}

// startQueued starts queued transfers while u has free slots.
func (s *sim) startQueued(u *node) {
	for len(u.uploads) < s.cfg.UploadSlots && len(u.queue) > 0 {
		r := u.queue[0]
		u.queue = u.queue[1:]
		if r.dead {
			continue
		}
		d := s.nodes[r.to]
		r.active, r.since = true, s.now
		u.uploads = append(u.uploads, r)
		d.downloads = append(d.downloads, r)
		s.rerate(u, d)
	}
}

// rerate settles and re-times the active transfers of u's uplink and d's
// downlink, whose shares changed.
func (s *sim) rerate(u, d *node) {
	for _, x := range u.uploads {
		s.retime(x)
	}
	for _, x := range d.downloads {
		if x.from != u.id {
			s.retime(x)
		}
	}
}

func (s *sim) retime(x *xfer) {
	x.remaining -= x.rate * (s.now - x.since).Seconds()
	x.since = s.now
	u, d := s.nodes[x.from], s.nodes[x.to]
	x.rate = min(u.up/float64(len(u.uploads)), d.down/float64(len(d.downloads)))
	x.ver++
	left := time.Duration(max(x.remaining, 0) / x.rate * float64(time.Second))
	s.schedule(event{at: s.now + left, kind: evDone, x: x, ver: x.ver})
}

// detach takes an active transfer off both links and lets the others
// speed up.
func (s *sim) detach(x *xfer) {
	if !x.active {
		return
	}
	x.remaining -= x.rate * (s.now - x.since).Seconds()
	x.active = false
	u, d := s.nodes[x.from], s.nodes[x.to]
	u.uploads = remove(u.uploads, x)
	d.downloads = remove(d.downloads, x)
	s.rerate(u, d)
	s.startQueued(u)
}

func remove(xs []*xfer, x *xfer) []*xfer {
	for i, y := range xs {
		if y == x {
			xs[i] = xs[len(xs)-1]
			return xs[:len(xs)-1]
		}
	}
	return xs
}

// kill ends r (finished, cancelled or abandoned) without accounting.
func (s *sim) kill(r *xfer) {
	r.dead = true
	delete(s.reqs, reqKey{r.from, r.to, r.piece})
}

// abandon ends r wherever it is, counting bytes already moved as wasted.
func (s *sim) abandon(r *xfer) {
	if r.dead {
		return
	}
	s.kill(r)
	if r.active {
		s.detach(r)
		s.res.WastedBytes += int64(r.size - max(r.remaining, 0))
	}
	if r.from == s.mirror && s.seeder != nil {
		s.seeder.Unserved(r.to, int(r.piece))
		s.offer()
	}
}

// cancel withdraws m's request for piece x from uploader j.
func (s *sim) cancel(j, to int32, x int) {
	if r, ok := s.reqs[reqKey{j, to, int32(x)}]; ok {
		s.abandon(r)
	}
}

// complete delivers x to its requester.
func (s *sim) complete(x *xfer) {
	s.kill(x)
	s.detach(x)
	if x.from == s.mirror {
		s.res.MirrorBytes += int64(x.size)
		if s.seeder != nil {
			s.seeder.Sent(x.to, int(x.piece), s.t())
			s.offer()
		}
	} else {
		s.res.RoomBytes += int64(x.size)
	}
	m := s.nodes[x.to]
	if m.has.Has(int(x.piece)) {
		s.res.WastedBytes += int64(x.size)
	}
	isNew := !m.has.Has(int(x.piece))
	for _, c := range m.picker.Received(x.from, int(x.piece), int64(x.size), s.t()) {
		s.cancel(c.Peer, m.id, c.Piece)
	}
	if isNew {
		s.announce(m, x.piece)
	}
	if m.picker.Done() && !m.finished {
		m.finished = true
		s.res.Finish[m.id] = s.now - m.joined
		s.res.Last = max(s.res.Last, s.now)
		s.waiting--
		return
	}
	s.ask(m, x.from)
}

// announce sends m's HAVE for piece x to its neighbours and the mirror
// (one event: they all get it after Latency).
func (s *sim) announce(m *node, x int32) {
	s.after(event{kind: evHave, b: m.id, piece: x})
}

// haveArrived delivers from's HAVE for x to its neighbours and the mirror.
func (s *sim) haveArrived(from int32, x int) {
	for _, j := range s.nodes[from].neighbors {
		s.announced(j, from, x)
	}
	s.announced(s.mirror, from, x)
}

// announced: node to learns that from holds piece x.
func (s *sim) announced(to, from int32, x int) {
	n := s.nodes[to]
	if !n.present {
		return
	}
	if to == s.mirror {
		if s.seeder != nil {
			s.seeder.PeerHas(from, x)
			s.offer()
		}
		return
	}
	n.picker.PeerHas(from, x)
	s.ask(n, from)
}

// offer sends the super-seeder's new offers.
func (s *sim) offer() {
	if s.seeder == nil {
		return
	}
	for _, o := range s.seeder.Offers(s.t()) {
		s.after(event{kind: evOffer, a: o.Peer, b: s.mirror, piece: int32(o.Piece)})
	}
}

// tick reports the bytes flowing on active transfers, gives up requests
// to silent peers and refills starved pipelines.
func (s *sim) tick() {
	for _, m := range s.nodes[:s.mirror] {
		if !m.present || m.finished {
			continue
		}
		for _, x := range m.downloads {
			m.picker.Progress(x.from, s.t())
		}
		for _, r := range m.picker.Expired(s.t()) {
			s.cancel(r.Peer, m.id, r.Piece)
		}
		s.fillStarved(m)
	}
	s.offer()
}
