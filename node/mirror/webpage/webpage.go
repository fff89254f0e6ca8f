// Package webpage renders the mirror's web page: the models it holds, with
// how to get each with stock tools and allmende, its licence (linked to
// the licence's text) and who attested where it came from; other pinned
// content, transfers and peers. Server-rendered, no assets from anywhere,
// readable on a phone. The mirror gathers the Page; this package only
// shapes and renders it.
package webpage

import (
	"html/template"
	"io"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/allmende/allmende/internal/units"
	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/fetch"
	"github.com/allmende/allmende/policy/license"
	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/store/ollama"
)

// page is the template of the web page.
var page = template.Must(template.New("index").Funcs(template.FuncMap{"bytes": units.HumanBytes, "base": path.Base}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>allmende mirror</title>
<style>
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;line-height:1.4;color:#1b1b1b}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}
code{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px;word-break:break-all;font-size:.85rem}
.muted{color:#666}.trusted{color:#1a7f37}.card{border:1px solid #ddd;border-radius:6px;padding:.75rem;margin:.75rem 0}
</style></head><body>
<h1>allmende mirror</h1>
<p class="muted">Peer <code>{{.ID}}</code> · {{len .Models}} model(s) · store uses {{bytes .DiskUsage}}{{if .Quota}} of a {{bytes .Quota}} quota{{end}}</p>
<h2>Models and datasets</h2>
{{range .Models}}<div class="card"><strong>{{.Name}}</strong> <span class="muted">{{.Kind}} · revision {{.Revision}} · {{bytes .Size}}</span>
{{if .Licenses}}<p>License: {{range $i, $l := .Licenses}}{{if $i}} · {{end}}{{if $l.URL}}<a href="{{$l.URL}}">{{$l.ID}}</a>{{else}}{{$l.ID}}{{end}}{{end}}{{if .LicenseExpr}} <span class="muted">({{.LicenseExpr}})</span>{{end}}</p>{{else}}<p class="muted">License: not stated</p>{{end}}
{{if .Attestations}}<p>Attested by: {{range $i, $a := .Attestations}}{{if $i}}; {{end}}<code>{{$a.Signer}}</code> <span class="{{if $a.Trusted}}trusted{{else}}muted{{end}}">({{if $a.Trusted}}trusted{{else}}not trusted here{{end}})</span>{{if $a.Upstream}} from {{$a.Upstream}}{{end}}{{if $a.Commit}} at <code>{{$a.Commit}}</code>{{end}}{{end}}</p>{{end}}
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

// Page is what the web page shows.
type Page struct {
	// Host is the host clients reach the mirror at (the request's).
	Host string
	// ID is the node's peer ID.
	ID        string
	Models    []Model
	Pins      []api.PinInfo
	Peers     []api.PeerInfo
	DiskUsage uint64
	Quota     uint64
	Transfers []fetch.Transfer
}

// Render writes the page as HTML.
func Render(w io.Writer, p Page) error { return page.Execute(w, p) }

// Held is a model the node holds, with the attestations kept for it.
type Held struct {
	Manifest     *manifest.Manifest
	Attestations []api.Attestation
}

// Model is one model as the web page shows it.
type Model struct {
	Kind, Name, Revision, Short string
	// Licenses are the licences of its licence expression, each linked
	// to its text; LicenseExpr is the expression when it joins several.
	Licenses    []License
	LicenseExpr string
	// Attestations say who vouched for where it came from.
	Attestations []api.Attestation
	// OCI: an Ollama or OCI model, pulled through /v2/.
	OCI   bool
	Size  uint64
	Files []File
}

// License is one licence and where its text is ("" if nowhere known).
type License struct{ ID, URL string }

// File is one file of a model and where the mirror serves it.
type File struct {
	Path, URL string
	Size      uint64
}

// Models shapes the held models for the page, sorted by name.
func Models(held []Held) []Model {
	out := make([]Model, 0, len(held))
	for _, h := range held {
		m := h.Manifest
		v := Model{Kind: m.Kind, Name: m.Name, Revision: m.Revision, Short: path.Base(m.Name),
			OCI: ollama.IsRecord(m), Attestations: h.Attestations}
		prefix := "/"
		if m.Kind == manifest.KindDataset {
			prefix = "/datasets/"
		}
		base := prefix + m.Name + "/resolve/" + url.PathEscape(m.Revision) + "/"
		paths := make([]string, 0, len(m.Files))
		for _, f := range m.Files {
			v.Size += f.Size
			v.Files = append(v.Files, File{Path: f.Path, Size: f.Size, URL: base + f.Path})
			paths = append(paths, f.Path)
		}
		v.Licenses, v.LicenseExpr = licenses(m.License, paths, base)
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// licenses splits the licence expression expr into its licences, each
// linked to its text: an SPDX licence's page, else the model's own licence
// file (served under base). The expression is returned too when it joins
// several.
func licenses(expr string, paths []string, base string) ([]License, string) {
	norm := license.NormalizeExpr(expr)
	if norm == "" {
		return nil, ""
	}
	own := ""
	if f := license.File(paths); f != "" {
		own = base + f
	}
	var out []License
	seen := map[string]bool{}
	for _, id := range strings.Fields(norm) {
		if id == "OR" || id == "AND" || seen[id] {
			continue
		}
		seen[id] = true
		l := License{ID: id, URL: license.TextURL(id)}
		if l.URL == "" {
			l.URL = own
		}
		out = append(out, l)
	}
	if len(out) == 1 {
		norm = ""
	}
	return out, norm
}

// OtherPins drops the pins that belong to models (their roots, files and
// manifests), which the page shows as models already.
func OtherPins(pins []api.PinInfo, ms []*manifest.Manifest, manifestCIDs []string) []api.PinInfo {
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
