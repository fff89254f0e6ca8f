// Command storebench measures the throughput of candidate embedded block
// stores for allmende: the boxo blockstore on go-ds-flatfs (with and without
// fsync) and on go-ds-pebble.
//
// For each store it imports a random file as UnixFS with the unixfs-v1-2025
// profile (1 MiB chunks, raw leaves, 1024 links per node, CIDv1), reads the
// file back through a DagReader, and reads every block straight from the
// blockstore. All rates are in MB/s (1 MB = 1e6 bytes). As references it
// also hashes the same file with Go's crypto/sha256 and with sha256sum(1).
// Nothing is evicted from the page cache between phases, so the reads are
// warm-cache reads.
//
// Usage:
//
//	go run ./bench/storebench [-size bytes] [-dir tmpdir]
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	flatfs "github.com/ipfs/go-ds-flatfs"
	pebbleds "github.com/ipfs/go-ds-pebble"
)

type store struct {
	name string
	open func(dir string) (ds.Batching, error)
}

var stores = []store{
	{"flatfs sync=true", func(dir string) (ds.Batching, error) {
		return flatfs.CreateOrOpen(dir, flatfs.NextToLast(2), true)
	}},
	{"flatfs sync=false", func(dir string) (ds.Batching, error) {
		return flatfs.CreateOrOpen(dir, flatfs.NextToLast(2), false)
	}},
	{"pebble default", func(dir string) (ds.Batching, error) {
		return pebbleds.NewDatastore(dir) // writes with pebble.NoSync
	}},
	{"pebble sync=true", func(dir string) (ds.Batching, error) {
		return pebbleds.NewDatastore(dir, pebbleds.WithPebbleWriteOptions(pebble.Sync))
	}},
}

func main() {
	size := flag.Int64("size", 1<<30, "size of the random test file in bytes")
	dir := flag.String("dir", os.TempDir(), "directory for temporary files")
	flag.Parse()
	log.SetFlags(0)

	uio.UnixFS_v1_2025.ApplyGlobals()

	tmp, err := os.MkdirTemp(*dir, "storebench-")
	check(err)
	tmpDir = tmp
	defer os.RemoveAll(tmp)

	file := filepath.Join(tmp, "input")
	check(writeRandom(file, *size))
	fmt.Printf("file: %d bytes, GOMAXPROCS=%d\n\n", *size, runtime.GOMAXPROCS(0))
	fmt.Printf("%-20s %12s %12s %12s %10s  %s\n", "store", "import MB/s", "read MB/s", "blocks MB/s", "disk MB", "root")

	var roots []cid.Cid
	for i, s := range stores {
		storeDir := filepath.Join(tmp, fmt.Sprint("store", i))
		r, err := bench(s, storeDir, file, *size)
		check(err)
		check(os.RemoveAll(storeDir))
		roots = append(roots, r)
	}

	// References: plain hash rate over the same file, shown in the import
	// column because hashing every byte is the floor of an import's work.
	goHash := timeIt(func() error { return goSHA256(file) })
	cliHash := timeIt(func() error { return exec.Command("sha256sum", file).Run() })
	fmt.Printf("%-20s %12.0f %12s %12s %10s\n", "ref crypto/sha256", rate(*size, goHash), "-", "-", "-")
	fmt.Printf("%-20s %12.0f %12s %12s %10s\n", "ref sha256sum", rate(*size, cliHash), "-", "-", "-")

	for _, r := range roots[1:] {
		if !r.Equals(roots[0]) {
			log.Fatalf("root CID mismatch: %s != %s", r, roots[0])
		}
	}
	fmt.Printf("\nall stores agree on root %s\n", roots[0])
}

// bench imports file into a fresh store in dir, reads it back both ways and
// prints one table row.
func bench(s store, dir, file string, size int64) (cid.Cid, error) {
	ctx := context.Background()
	d, err := s.open(dir)
	if err != nil {
		return cid.Undef, err
	}
	defer d.Close()
	bs := blockstore.NewBlockstore(d, blockstore.NoPrefix())
	dserv := merkledag.NewDAGService(blockservice.New(bs, nil))

	var root cid.Cid
	importTime := timeIt(func() error {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		params := helpers.DagBuilderParams{
			Dagserv:    dserv,
			Maxlinks:   1024,
			RawLeaves:  true,
			CidBuilder: uio.UnixFS_v1_2025.CidBuilder(),
		}
		db, err := params.New(chunker.NewSizeSplitter(f, 1<<20))
		if err != nil {
			return err
		}
		nd, err := balanced.Layout(db)
		if err == nil {
			root = nd.Cid()
		}
		return err
	})

	readTime := timeIt(func() error {
		nd, err := dserv.Get(ctx, root)
		if err != nil {
			return err
		}
		r, err := uio.NewDagReader(ctx, nd, dserv)
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, r)
		if err == nil && n != size {
			err = fmt.Errorf("read %d bytes, want %d", n, size)
		}
		return err
	})

	var blockBytes int64
	blocksTime := timeIt(func() error {
		keys, err := bs.AllKeysChan(ctx)
		if err != nil {
			return err
		}
		for k := range keys {
			b, err := bs.Get(ctx, k)
			if err != nil {
				return err
			}
			blockBytes += int64(len(b.RawData()))
		}
		return nil
	})

	fmt.Printf("%-20s %12.0f %12.0f %12.0f %10.0f  %s\n", s.name,
		rate(size, importTime), rate(size, readTime), rate(blockBytes, blocksTime),
		float64(diskUsage(dir))/1e6, root)
	return root, nil
}

// timeIt runs fn after a GC and returns its wall time; it exits on error.
func timeIt(fn func() error) time.Duration {
	runtime.GC()
	start := time.Now()
	check(fn())
	return time.Since(start)
}

func rate(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

func writeRandom(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func goSHA256(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(sha256.New(), f)
	return err
}

func diskUsage(dir string) (n int64) {
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// tmpDir is removed by check before exiting on error.
var tmpDir string

func check(err error) {
	if err != nil {
		if tmpDir != "" {
			os.RemoveAll(tmpDir)
		}
		log.Fatal(err)
	}
}
