package node

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"time"
)

// indexTimeout bounds the work behind one rendering of the web page.
const indexTimeout = 5 * time.Second

// indexPage is the mirror's web page: server-rendered, no assets from
// anywhere, readable on a phone.
var indexPage = template.Must(template.New("index").Funcs(template.FuncMap{"bytes": HumanBytes}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>allmende mirror</title>
<style>
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;line-height:1.4;color:#1b1b1b}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}
code{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px;word-break:break-all;font-size:.85rem}
.muted{color:#666}.card{border:1px solid #ddd;border-radius:6px;padding:.75rem;margin:.75rem 0}
</style></head><body>
<h1>allmende mirror</h1>
<p class="muted">Peer <code>{{.ID}}</code> · {{len .Pins}} item(s) · store uses {{bytes .DiskUsage}}</p>
<h2>Models and data on this mirror</h2>
{{range .Pins}}<div class="card"><strong>{{.Name}}</strong> <span class="muted">{{bytes .Size}}</span><br>
<code>allmende fetch {{.CID}} -o {{.Name}}</code><br>
<a href="/ipfs/{{.CID}}?format=car">download as CAR (verifiable)</a></div>
{{else}}<p class="muted">Nothing yet. Add with <code>allmende add PATH</code>.</p>{{end}}
<h2>Peers in the room</h2>
{{if .Peers}}<table><tr><th>peer</th><th>address</th></tr>
{{range .Peers}}<tr><td><code>{{.ID}}</code></td><td><code>{{.Addr}}</code></td></tr>{{end}}</table>
{{else}}<p class="muted">No peers connected.</p>{{end}}
</body></html>
`))

type indexData struct {
	ID        string
	Pins      []PinInfo
	Peers     []PeerInfo
	DiskUsage uint64
}

func (n *Node) serveIndex(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), indexTimeout)
	defer cancel()
	d := indexData{ID: n.host.ID().String()}
	var err error
	if d.Pins, err = n.List(ctx); err != nil {
		http.Error(w, "listing pins: "+err.Error(), http.StatusInternalServerError)
		return
	}
	d.Peers, _ = n.Peers(ctx)
	d.DiskUsage, _ = n.store.DiskUsage(ctx)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := indexPage.Execute(w, d); err != nil {
		n.log.Warn("render web page", "err", err)
	}
}

// HumanBytes formats a byte count for people (binary units).
func HumanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
