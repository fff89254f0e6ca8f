// Command cartool drives package store/car on a store directory, without a
// node, for bench/car.sh (export and import rates) and
// test/kubo/car-interop.sh (CARs to and from Kubo). It is a test and
// measurement tool, not part of allmende's CLI (`allmende export` and
// `allmende import FILE.car` are).
//
// Usage (-sync opens the store with store.sync, every write made durable
// before it is acknowledged):
//
//	cartool [-sync] add STORE PATH          add a file or directory (whole copies of
//	                                large files), pin it, print its root CID
//	cartool import-in-place STORE DIR
//	                                import DIR as a named model with its leaves
//	                                held in the files (no copy), pin it, print
//	                                its root CID
//	cartool export STORE CID OUT    write the CAR of CID to OUT (- for stdout)
//	cartool export-model STORE DIR OUT
//	                                import DIR in place as the model acme/tiny,
//	                                store its manifest, sign a record for it
//	                                with a new key, write the model's CAR to
//	                                OUT, print its roots (content, manifest,
//	                                record)
//	cartool import STORE IN         read the CAR IN (- for stdin), pin its roots
//	                                if complete, print them
//	cartool get STORE CID OUT       write the file or directory CID to OUT
//	cartool du STORE                print the bytes the store occupies
//
// Every command prints one JSON line of what it did on stderr.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/car"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "cartool:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	sync := len(args) > 0 && args[0] == "-sync"
	if sync {
		args = args[1:]
	}
	if len(args) < 2 {
		return errors.New("usage: cartool [-sync] add|import-in-place|export|export-model|import|get|du STORE ...")
	}
	cmd, dir, rest := args[0], args[1], args[2:]
	want := map[string]int{"add": 1, "import-in-place": 1, "export": 2, "export-model": 2, "import": 1, "get": 2, "du": 0}
	n, ok := want[cmd]
	if !ok || len(rest) != n {
		return fmt.Errorf("usage: cartool %s STORE with %d more arguments", cmd, n)
	}
	if err := store.Init(dir); err != nil {
		return err
	}
	st, err := store.Open(ctx, dir, store.Options{Sync: sync})
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	info, err := dispatch(ctx, st, cmd, rest)
	if err != nil {
		return err
	}
	info["seconds"] = time.Since(start).Seconds()
	line, _ := json.Marshal(info)
	fmt.Fprintln(os.Stderr, string(line))
	return nil
}

func dispatch(ctx context.Context, st *store.Store, cmd string, args []string) (map[string]any, error) {
	switch cmd {
	case "add":
		return add(ctx, st, args[0])
	case "import-in-place":
		return importInPlace(ctx, st, args[0])
	case "export":
		return export(ctx, st, args[0], args[1])
	case "export-model":
		return exportModel(ctx, st, args[0], args[1])
	case "import":
		return importCAR(ctx, st, args[0])
	case "get":
		c, err := cid.Decode(args[0])
		if err != nil {
			return nil, err
		}
		return map[string]any{"cid": c.String()}, store.Export(ctx, st.LocalDAG(), c, args[1])
	default: // du
		n, err := st.DiskUsage(ctx)
		fmt.Println(n)
		return map[string]any{"bytes": n}, err
	}
}

func add(ctx context.Context, st *store.Store, path string) (map[string]any, error) {
	unlock := st.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	nd, err := st.Add(ctx, path, store.ImportOptions{})
	if err != nil {
		return nil, err
	}
	if err := st.Pin(ctx, nd.Cid(), path); err != nil {
		return nil, err
	}
	fmt.Println(nd.Cid())
	return map[string]any{"cid": nd.Cid().String()}, nil
}

func importInPlace(ctx context.Context, st *store.Store, dir string) (map[string]any, error) {
	unlock := st.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	m, err := manifest.Import(ctx, st.LocalDAG(), dir, manifest.ImportOptions{Name: "bench/model", NoCopy: true})
	if err != nil {
		return nil, err
	}
	root, err := cid.Decode(m.Root)
	if err != nil {
		return nil, err
	}
	if err := st.Pin(ctx, root, dir); err != nil {
		return nil, err
	}
	fmt.Println(root)
	return map[string]any{"cid": root.String()}, nil
}

func export(ctx context.Context, st *store.Store, ref, out string) (map[string]any, error) {
	c, err := cid.Decode(ref)
	if err != nil {
		return nil, err
	}
	stats, err := writeOut(out, func(w io.Writer) (car.Stats, error) {
		return car.Export(ctx, st.Serving(), w, []cid.Cid{c}, car.ExportOptions{})
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"cid": c.String(), "bytes": stats.Bytes, "blocks": stats.Blocks}, nil
}

// writeOut runs write on OUT (stdout for -), synced when a file.
func writeOut(out string, write func(io.Writer) (car.Stats, error)) (car.Stats, error) {
	if out == "-" {
		return write(os.Stdout)
	}
	f, err := os.Create(out)
	if err != nil {
		return car.Stats{}, err
	}
	defer f.Close()
	stats, err := write(f)
	if err != nil {
		return stats, err
	}
	return stats, f.Sync()
}

func exportModel(ctx context.Context, st *store.Store, dir, out string) (map[string]any, error) {
	unlock := st.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	m, err := manifest.Import(ctx, st.LocalDAG(), dir, manifest.ImportOptions{Name: "acme/tiny", NoCopy: true})
	if err != nil {
		return nil, err
	}
	enc, err := m.Encode()
	if err != nil {
		return nil, err
	}
	mnd, err := store.BuildFile(ctx, st.LocalDAG(), bytes.NewReader(enc))
	if err != nil {
		return nil, err
	}
	sk, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	rec := &manifest.Record{Name: m.Name, Revision: m.Revision, Manifest: mnd.Cid().String(), Seq: 1,
		Expires: time.Now().Add(24 * time.Hour).UTC()}
	if err := rec.Sign(sk); err != nil {
		return nil, err
	}
	raw, err := rec.Encode()
	if err != nil {
		return nil, err
	}
	content, err := cid.Decode(m.Root)
	if err != nil {
		return nil, err
	}
	model := car.Model{Content: content, Manifest: mnd.Cid(), Record: raw}
	stats, err := writeOut(out, func(w io.Writer) (car.Stats, error) {
		return car.ExportModel(ctx, st.Serving(), w, model, car.ExportOptions{})
	})
	if err != nil {
		return nil, err
	}
	for _, r := range stats.Roots {
		fmt.Println(r)
	}
	return map[string]any{"roots": stats.Roots, "bytes": stats.Bytes, "blocks": stats.Blocks}, nil
}

func importCAR(ctx context.Context, st *store.Store, in string) (map[string]any, error) {
	var r io.Reader = os.Stdin
	if in != "-" {
		f, err := os.Open(in)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	unlock := st.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	res, err := car.Import(ctx, st, r, car.ImportOptions{})
	if err != nil {
		return nil, err
	}
	for _, c := range res.ToPin() {
		if err := st.Pin(ctx, c, "car import"); err != nil {
			return nil, err
		}
		fmt.Println(c)
	}
	return map[string]any{"version": res.Version, "blocks": res.Blocks, "stored": res.Stored,
		"bytes": res.Bytes, "copied": res.Copied, "roots": res.Roots}, nil
}
