package harness

import (
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/allmende/allmende/node/home"
)

// StoreBytes is what n's store keeps on disk: Blocks, every file of the
// block store (block files and flatfs's few of its own), and Copies, the
// copies of added files. Files that come and go while it is measured are
// skipped.
func (n *Node) StoreBytes() (blocks, copies int64) {
	store := home.Dir(n.Home).Store()
	return dirBytes(filepath.Join(store, "blocks"), nil), dirBytes(filepath.Join(store, "files"), nil)
}

// StoreTotal is the sum of StoreBytes.
func (n *Node) StoreTotal() int64 {
	blocks, copies := n.StoreBytes()
	return blocks + copies
}

// FillParts lists the files of mirror fills in progress (or cut short).
func (n *Node) FillParts() []string {
	p, _ := filepath.Glob(filepath.Join(home.Dir(n.Home).Fills(), "*"+home.FillPartSuffix))
	return p
}

// FillBytes is the size of the files of mirror fills in progress.
func (n *Node) FillBytes() int64 {
	return dirBytes(home.Dir(n.Home).Fills(), func(name string) bool { return strings.HasSuffix(name, home.FillPartSuffix) })
}

// dirBytes sums the sizes of the regular files below dir whose names
// match (all if match is nil).
func dirBytes(dir string, match func(string) bool) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || (match != nil && !match(d.Name())) {
			return nil
		}
		if info, err := d.Info(); err == nil {
			total += info.Size()
		}
		return nil
	})
	return total
}
