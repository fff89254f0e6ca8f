package mirror

import (
	"context"
	"net/http"
	"time"

	"github.com/allmende/allmende/node/mirror/webpage"
	"github.com/allmende/allmende/node/models"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
)

// indexTimeout bounds the work behind one rendering of the web page.
const indexTimeout = 5 * time.Second

// serveIndex gathers and renders the web page (node/mirror/webpage).
func (mr *Mirror) serveIndex(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), indexTimeout)
	defer cancel()
	manifestCIDs := mr.models.Index().List()
	var held []webpage.Held
	for _, s := range manifestCIDs {
		c, err := cid.Decode(s)
		if err != nil {
			continue
		}
		if m, err := models.ReadManifest(ctx, mr.store.LocalDAG(), c); err == nil {
			held = append(held, webpage.Held{Manifest: m, Attestations: mr.models.Attestations(c, m)})
		}
	}
	d := webpage.Page{Host: r.Host, Models: webpage.Models(held)}
	if id, err := mr.cfg.Node.ID(ctx); err == nil {
		d.ID = id.ID
	}
	pins, err := mr.cfg.Node.List(ctx)
	if err != nil {
		http.Error(w, "listing pins: "+err.Error(), http.StatusInternalServerError)
		return
	}
	ms := make([]*manifest.Manifest, 0, len(held))
	for _, h := range held {
		ms = append(ms, h.Manifest)
	}
	d.Pins = webpage.OtherPins(pins, ms, manifestCIDs)
	d.Peers, _ = mr.cfg.Node.Peers(ctx)
	d.DiskUsage, _ = mr.store.DiskUsage(ctx)
	d.Quota = uint64(max(mr.cfg.Quota, 0))
	d.Transfers = mr.fetch.Transfers()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := webpage.Render(w, d); err != nil {
		mr.log.Warn("render web page", "err", err)
	}
}
