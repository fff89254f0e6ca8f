package store

import (
	"context"
	"fmt"
	"sync"

	"github.com/ipfs/boxo/filestore"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// verifyWorkers is how many blocks Verify re-hashes at once.
const verifyWorkers = 4

// VerifyReport says what Verify found. Corrupt blocks are quarantined as
// they are found, so they show up among Missing too until fetched again.
type VerifyReport struct {
	// Blocks and Bytes are what was re-hashed.
	Blocks int    `json:"blocks"`
	Bytes  uint64 `json:"bytes"`
	// Corrupt are blocks whose bytes did not match their CID; each was
	// moved to the quarantine directory.
	Corrupt []string `json:"corrupt"`
	// Missing are blocks a pin needs that the store does not hold.
	Missing []string `json:"missing"`
	// Unreadable are blocks that could not be read, with the reason: a
	// disk error, or a no-copy block whose source file changed or went.
	// They are not served.
	Unreadable []string `json:"unreadable"`
	// Damaged are the pinned roots with missing blocks below them.
	Damaged []string `json:"damaged"`
	// Quarantine is the directory corrupt blocks were moved to.
	Quarantine string `json:"quarantine"`
	// ChecksumsKept counts sound blocks whose checksum (sums.go) was
	// missing or wrong and is now kept, so leaves are served without a
	// re-hash again; a store from before checksums gets them this way.
	ChecksumsKept int `json:"checksums_kept"`
}

// OK reports whether every pinned block is held and sound.
func (r VerifyReport) OK() bool {
	return len(r.Missing) == 0 && len(r.Corrupt) == 0 && len(r.Unreadable) == 0
}

// Verify re-hashes every block in the store against its CID, quarantines
// the corrupt ones, and walks every pin to find blocks that are missing. It
// holds the pin lock, so GC waits, but imports and fetches go on.
func (s *Store) Verify(ctx context.Context) (VerifyReport, error) {
	unlock := s.bs.PinLock(ctx)
	defer unlock.Unlock(ctx)
	rep := VerifyReport{Corrupt: []string{}, Missing: []string{}, Unreadable: []string{}, Damaged: []string{}, Quarantine: s.QuarantineDir()}
	if err := s.scanBlocks(ctx, &rep); err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	if err := s.findMissing(ctx, &rep); err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	return rep, nil
}

// scanBlocks re-hashes every held block.
func (s *Store) scanBlocks(ctx context.Context, rep *VerifyReport) error {
	keys, err := s.fs.AllKeysChan(ctx)
	if err != nil {
		return fmt.Errorf("list blocks: %w", err)
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for range verifyWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range keys {
				size, corrupt, kept, err := s.checkHeld(ctx, c)
				mu.Lock()
				if kept {
					rep.ChecksumsKept++
				}
				switch {
				case err != nil:
					rep.Unreadable = append(rep.Unreadable, err.Error())
				case corrupt:
					rep.Corrupt = append(rep.Corrupt, c.String())
				default:
					rep.Blocks++
					rep.Bytes += uint64(size)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// checkHeld re-hashes one held block and quarantines it if it is corrupt;
// a sound leaf gets its checksum kept if it had none or a wrong one (kept).
// A block deleted meanwhile counts as sound: it is no longer held.
func (s *Store) checkHeld(ctx context.Context, c cid.Cid) (size int, corrupt, kept bool, err error) {
	b, err := s.vbs.Blockstore.Get(ctx, c)
	if ipld.IsNotFound(err) {
		// Not in the block store: a file-backed block, which the file
		// manager re-hashes itself, or one deleted meanwhile.
		b, err = s.fs.FileManager().Get(ctx, c)
		if ipld.IsNotFound(err) {
			return 0, false, false, nil
		}
		if err != nil {
			if owned, rotten := s.badCopy(ctx, c, err); owned {
				return 0, rotten, false, nil // rot in, or a leftover of, one of the store's copies
			}
		}
		if err != nil {
			// Its file no longer holds it: stop serving that file's
			// leaves unhashed (Serving), even if its state looks the same.
			if ref := filestore.List(ctx, s.fs, c); ref.Status != filestore.StatusKeyNotFound {
				s.forgetVerified(ctx, refPath(ref.FilePath))
			}
			return 0, false, false, fmt.Errorf("file-backed block %s: %w", c, err)
		}
		return len(b.RawData()), false, s.keepSum(ctx, c, b.RawData()), nil
	}
	if err != nil {
		return 0, false, false, fmt.Errorf("read %s: %w", c, err)
	}
	if why := checkBlock(c, b.RawData()); why != nil {
		s.vbs.quarantineBlock(ctx, c, b.RawData(), why)
		return 0, true, false, nil
	}
	return len(b.RawData()), false, s.keepSum(ctx, c, b.RawData()), nil
}

// keepSum keeps the checksum of block c, whose bytes data were just
// verified, unless the right one is kept already; it reports whether it
// wrote one. The block store names every block as a raw CID, so inner
// nodes get one too: it is right (it is keyed by multihash), just unused.
func (s *Store) keepSum(ctx context.Context, c cid.Cid, data []byte) bool {
	sum := Checksum(data)
	if kept, ok := s.refs.sums.get(ctx, c); ok && kept == sum {
		return false
	}
	return s.refs.sums.put(ctx, map[cid.Cid]uint32{c: sum}) == nil
}

// findMissing walks every recursive pin through local blocks and records
// those that are not held, and the roots they belong to.
func (s *Store) findMissing(ctx context.Context, rep *VerifyReport) error {
	seen := make(map[string]struct{})
	for p := range s.pins.RecursiveKeys(ctx, false) {
		if p.Err != nil {
			return fmt.Errorf("list pins: %w", p.Err)
		}
		before, unreadable := len(rep.Missing), false
		if err := s.walkLocal(ctx, p.Pin.Key, seen, rep, &unreadable); err != nil {
			return err
		}
		if len(rep.Missing) > before || unreadable {
			rep.Damaged = append(rep.Damaged, p.Pin.Key.String())
		}
	}
	for p := range s.pins.DirectKeys(ctx, false) {
		if p.Err != nil {
			return fmt.Errorf("list pins: %w", p.Err)
		}
		if has, err := s.bs.Has(ctx, p.Pin.Key); err != nil {
			return err
		} else if !has {
			rep.Missing = append(rep.Missing, p.Pin.Key.String())
			rep.Damaged = append(rep.Damaged, p.Pin.Key.String())
		}
	}
	return nil
}

// walkLocal visits the DAG below root depth first, without the network.
// Blocks already seen (shared with another pin) are not visited again. It
// sets *unreadable if a held block below root could not be read.
func (s *Store) walkLocal(ctx context.Context, root cid.Cid, seen map[string]struct{}, rep *VerifyReport, unreadable *bool) error {
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, ok := seen[c.KeyString()]; ok {
			continue
		}
		seen[c.KeyString()] = struct{}{}
		nd, err := s.dag.Get(ctx, c)
		if ipld.IsNotFound(err) {
			rep.Missing = append(rep.Missing, c.String())
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Held but unreadable: scanBlocks lists it among Unreadable;
			// the root counts as damaged.
			*unreadable = true
			continue
		}
		for _, l := range nd.Links() {
			stack = append(stack, l.Cid)
		}
	}
	return nil
}
