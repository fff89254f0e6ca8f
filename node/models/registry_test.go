package models

import (
	"context"
	"log/slog"
	"testing"

	"github.com/allmende/allmende/internal/p2ptest"
	"github.com/allmende/allmende/node/fetch"
	"github.com/allmende/allmende/store/storetest"
)

// newTestRegistry opens a registry on a fresh home and store, on a
// loopback host with no peers; its network DAG reads the store only.
func newTestRegistry(t *testing.T) *Registry {
	t.Helper()
	st := storetest.New(t)
	h := p2ptest.Host(t)
	log := slog.New(slog.DiscardHandler)
	engine := fetch.New(fetch.Config{Store: st, Net: storetest.DAGOver(st.Blockstore()), Host: h, Log: log})
	reg, err := Open(context.Background(), Config{Home: t.TempDir(), Store: st, Host: h, Fetch: engine, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}
