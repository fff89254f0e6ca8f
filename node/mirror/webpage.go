package mirror

import (
	"context"
	"net/url"
	"path"
	"sort"

	"html/template"
	"net/http"
	"time"

	"github.com/allmende/allmende/internal/units"
	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/fetch"
	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/store/ollama"
)

// indexTimeout bounds the work behind one rendering of the web page.
const indexTimeout = 5 * time.Second

// indexPage is the mirror's web page: server-rendered, no assets from
// anywhere, readable on a phone.
var indexPage = template.Must(template.New("index").Funcs(template.FuncMap{"bytes": units.HumanBytes, "base": path.Base}).Parse(`<!doctype html>
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
<p class="muted">Peer <code>{{.ID}}</code> · {{len .Models}} model(s) · store uses {{bytes .DiskUsage}}{{if .Quota}} of a {{bytes .Quota}} quota{{end}}</p>
<h2>Models and datasets</h2>
{{range .Models}}<div class="card"><strong>{{.Name}}</strong> <span class="muted">{{.Kind}} · revision {{.Revision}} · {{bytes .Size}}{{if .License}} · license {{.License}}{{end}}</span>
{{if .OCI}}<p>With Ollama:<br><code>ollama pull --insecure {{$.Host}}/{{.Name}}:{{.Revision}}</code></p>
<p>With OCI tools:<br><code>oras pull --plain-http {{$.Host}}/{{.Name}}:{{.Revision}}</code></p>
<p>With allmende (from every peer in the room):<br><code>allmende fetch ollama:{{.Name}}:{{.Revision}} --ollama-store</code></p>
{{else}}<p>With Hugging Face tools:<br><code>HF_ENDPOINT=http://{{$.Host}} hf download {{if eq .Kind "dataset"}}--repo-type dataset {{end}}{{.Name}}</code></p>
<p>With allmende (from every peer in the room):<br><code>allmende fetch {{.Name}}@{{.Revision}} -o {{.Short}}</code></p>
<p>To carry it offline: <a href="/allmende/car/{{.Name}}?revision={{.Revision}}">download as CAR</a> (every block verifiable, with its signed name), then <code>allmende import {{.Short}}.car</code></p>{{end}}
<details><summary>{{len .Files}} file(s)</summary><table>
{{range .Files}}<tr><td><a href="{{.URL}}">{{.Path}}</a></td><td>{{bytes .Size}}</td></tr>{{end}}</table></details></div>
{{else}}<p class="muted">No named models yet. Import one with <code>allmende import DIR --name org/model</code>.</p>{{end}}
{{if .Pins}}<h2>Other content</h2>{{end}}
{{range .Pins}}<div class="card"><strong>{{.Name}}</strong> <span class="muted">{{bytes .Size}}</span><br>
<code>allmende fetch {{.CID}} -o {{base .Name}}</code><br>
<a href="/ipfs/{{.CID}}?format=car">download as CAR (verifiable)</a></div>
{{end}}
<h2>Transfers in progress</h2>
{{if .Transfers}}<table><tr><th>content</th><th>progress</th></tr>
{{range .Transfers}}<tr><td><code>{{.CID}}</code></td><td>{{bytes .Done}} of {{bytes .Total}}</td></tr>{{end}}</table>
{{else}}<p class="muted">None.</p>{{end}}
<h2>Peers in the room</h2>
{{if .Peers}}<table><tr><th>peer</th><th>address</th></tr>
{{range .Peers}}<tr><td><code>{{.ID}}</code></td><td><code>{{.Addr}}</code></td></tr>{{end}}</table>
{{else}}<p class="muted">No peers connected.</p>{{end}}
</body></html>
`))

type indexData struct {
	Host      string
	Models    []modelView
	ID        string
	Pins      []api.PinInfo
	Peers     []api.PeerInfo
	DiskUsage uint64
	Quota     uint64
	Transfers []fetch.Transfer
}

func (mr *Mirror) serveIndex(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), indexTimeout)
	defer cancel()
	ms := mr.models.Manifests(ctx)
	d := indexData{Host: r.Host, Models: modelViews(ms)}
	if id, err := mr.cfg.Node.ID(ctx); err == nil {
		d.ID = id.ID
	}
	pins, err := mr.cfg.Node.List(ctx)
	if err != nil {
		http.Error(w, "listing pins: "+err.Error(), http.StatusInternalServerError)
		return
	}
	d.Pins = otherPins(pins, ms, mr.models.Index().List())
	d.Peers, _ = mr.cfg.Node.Peers(ctx)
	d.DiskUsage, _ = mr.store.DiskUsage(ctx)
	d.Quota = uint64(max(mr.cfg.Quota, 0))
	d.Transfers = mr.fetch.Transfers()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := indexPage.Execute(w, d); err != nil {
		mr.log.Warn("render web page", "err", err)
	}
}

// modelView is one model as the web page shows it.
type modelView struct {
	Kind, Name, Revision, License, Short string
	// OCI: an Ollama or OCI model, pulled through /v2/.
	OCI   bool
	Size  uint64
	Files []fileView
}

type fileView struct {
	Path, URL string
	Size      uint64
}

func modelViews(ms []*manifest.Manifest) []modelView {
	var out []modelView
	for _, m := range ms {
		v := modelView{Kind: m.Kind, Name: m.Name, Revision: m.Revision, License: m.License, Short: path.Base(m.Name),
			OCI: ollama.IsRecord(m)}
		prefix := "/"
		if m.Kind == manifest.KindDataset {
			prefix = "/datasets/"
		}
		for _, f := range m.Files {
			v.Size += f.Size
			v.Files = append(v.Files, fileView{Path: f.Path, Size: f.Size, URL: prefix + m.Name + "/resolve/" + url.PathEscape(m.Revision) + "/" + f.Path})
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// otherPins drops the pins that belong to models (their roots, files and
// manifests), which the page shows as models already.
func otherPins(pins []api.PinInfo, ms []*manifest.Manifest, manifestCIDs []string) []api.PinInfo {
	owned := map[string]bool{}
	for _, c := range manifestCIDs {
		owned[c] = true
	}
	for _, m := range ms {
		owned[m.Root] = true
		for _, f := range m.Files {
			owned[f.CID] = true
		}
	}
	var out []api.PinInfo
	for _, p := range pins {
		if !owned[p.CID] {
			out = append(out, p)
		}
	}
	return out
}
