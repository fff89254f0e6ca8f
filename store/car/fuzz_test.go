package car

import (
	"bytes"
	"context"
	"testing"
)

// FuzzImportCAR feeds arbitrary bytes to Import, seeded with small valid
// CARs (one of a named model with its record). Whatever comes in: no
// panic; an error means nothing to pin; success means every root's DAG
// is in the store.
func FuzzImportCAR(f *testing.F) {
	src := openStore(f)
	_, root := addTree(f, src, map[string][]byte{"a": []byte("hello"), "sub/b": randomBytes(3, 300)})
	f.Add(exportCAR(f, src, root))
	_, _, model := namedModel(f, src, map[string][]byte{"config.json": []byte("{}")})
	var named bytes.Buffer
	if _, err := ExportModel(context.Background(), src.Serving(), &named, model, ExportOptions{}); err != nil {
		f.Fatal(err)
	}
	f.Add(named.Bytes())
	f.Add([]byte{})
	dst := openStore(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		res, err := Import(ctx, dst, bytes.NewReader(data), ImportOptions{})
		if res == nil {
			t.Fatalf("no result (err %v)", err)
		}
		if err != nil {
			if len(res.ToPin()) > 0 {
				t.Fatalf("error %v, yet roots to pin", err)
			}
			return
		}
		if !res.Complete() {
			t.Fatalf("no error, yet incomplete roots: %+v", res.Roots)
		}
		for _, rt := range res.Roots {
			if missing, err := walk(ctx, dst, rt.CID); err != nil || missing.Defined() {
				t.Fatalf("root %s reported complete, but %s is missing (%v)", rt.CID, missing, err)
			}
		}
	})
}
