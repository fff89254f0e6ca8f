package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/allmende/allmende/test/harness"
)

func TestExportToFullDiskLeavesNothing(t *testing.T) {
	disk := harness.MountTmpfs(t, "1m")
	ctx := context.Background()
	s := openTestStore(t)
	nd, err := BuildFile(ctx, s.LocalDAG(), bytes.NewReader(randomBytes(6, 3<<20)))
	if err != nil {
		t.Fatal(err)
	}
	err = Export(ctx, s.LocalDAG(), nd.Cid(), filepath.Join(disk, "out"))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("export of 3 MiB to a 1 MiB disk: %v, want ENOSPC", err)
	}
	if left, _ := os.ReadDir(disk); len(left) != 0 {
		t.Errorf("a failed export left %d entries on the disk, e.g. %s", len(left), left[0].Name())
	}
}
