// Package swarm owns allmende's piece-exchange policy: how the machines of
// a room that fetch one root at once share its pieces, the way BitTorrent's
// peers do (docs/swarm.md). A piece is one leaf of the root's DAG, numbered
// in depth-first link order; peers announce the pieces they hold over the
// have protocol (protocol.HaveID) and move them over the bulk protocol.
//
//   - Picker is a fetcher's side: which piece to ask which peer for (the
//     first few at random, then rarest first; a costly source such as a
//     super-seeding mirror only for pieces no room peer announces; duplicate
//     requests only in the end game), how many requests each peer gets (from
//     its measured rate), and which requests to give up (a peer silent for
//     SnubAfter).
//   - Seeder is a seeder's side behind a slow uplink: super-seeding (BEP 16),
//     offering each peer one piece nobody holds, every piece once before any
//     twice.
//   - Bitfield is a set of pieces, with BitTorrent's encoding.
//
// The package does no I/O, starts no goroutine and reads no clock: every
// call that depends on time is given it, and every random choice comes from
// the *rand.Rand it is configured with. The real fetcher and the simulation
// (package swarmsim) run this same code.
package swarm

// Limits of a swarm that the fetcher and the server share with the
// simulation.
const (
	// MaxNeighbors bounds the peers a node exchanges pieces with for one
	// root (have streams). With all of a LAN's machines as neighbours a
	// node would receive every HAVE of the room; fifty keep the pieces
	// spreading (the simulation's thousand machines finish within 1.05×
	// of one) at a bounded cost.
	MaxNeighbors = 50
	// DefaultUploadSlots bounds the pieces a node uploads at once; further
	// requests wait their turn.
	DefaultUploadSlots = 8
)
