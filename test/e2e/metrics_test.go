package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/test/harness"
)

// metricsWait bounds the wait for the DHT's metrics to appear.
const metricsWait = time.Minute

// scrape is one /metrics page: the metric families it declares (# TYPE)
// and the lines of its series.
type scrape struct {
	types  map[string]string // family name -> counter, gauge, histogram, ...
	series []string
}

func parseScrape(t *testing.T, body []byte) scrape {
	t.Helper()
	s := scrape{types: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			s.types[f[2]] = f[3]
		} else if line != "" && !strings.HasPrefix(line, "#") {
			s.series = append(s.series, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

// count is the number of series whose line begins with prefix (what
// grep -c '^prefix' counts).
func (s scrape) count(prefix string) int {
	n := 0
	for _, l := range s.series {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// names are the family names, sorted.
func (s scrape) names() []string {
	out := make([]string, 0, len(s.types))
	for n := range s.types {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (s scrape) value(t *testing.T, series string) float64 {
	t.Helper()
	for _, l := range s.series {
		if rest, ok := strings.CutPrefix(l, series+" "); ok {
			var v float64
			if err := json.Unmarshal([]byte(rest), &v); err == nil {
				return v
			}
		}
	}
	return 0
}

func apiMetrics(t *testing.T, n *harness.Node) scrape {
	t.Helper()
	body, err := n.APIGet(nil, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return parseScrape(t, body)
}

// TestOneMetricsRegistry: a daemon's /metrics, on the API (with its token)
// and on the mirror, is one registry holding libp2p's metrics (host,
// resource manager), bitswap's, the DHT's and allmende's own, named by
// Prometheus' conventions; the Grafana dashboard in packaging/ asks only
// for metrics a daemon serves.
func TestOneMetricsRegistry(t *testing.T) {
	a := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0", "ALLMENDE_DHT_MODE=server")
	b := harness.NewNode(t, "ALLMENDE_DHT_MODE=server")
	a.Start()
	b.Start()
	f := filepath.Join(t.TempDir(), "weights.bin")
	harness.WriteRandomFile(t, f, 3<<20, 11)
	root := a.Add(f)
	b.MustRun("connect", a.TCPAddr())
	b.MustRun("fetch", root, "-o", filepath.Join(t.TempDir(), "out.bin"))

	// The DHT's metrics reach Prometheus once its first messages flowed.
	harness.WaitUntil(t, "the DHT's metrics", metricsWait, 100*time.Millisecond, func() bool {
		return apiMetrics(t, a).count("libp2p_kad_dht_rpc_") > 0
	})
	api := apiMetrics(t, a)
	code, _, body := harness.MustGet(t, a.MirrorURL(t)+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("mirror /metrics: status %d", code)
	}
	mirror := parseScrape(t, body)
	fetcher := apiMetrics(t, b)
	t.Logf("grep -c '^libp2p_': API %d, mirror %d, fetcher's API %d series",
		api.count("libp2p_"), mirror.count("libp2p_"), fetcher.count("libp2p_"))

	t.Run("the API wants its token", func(t *testing.T) {
		resp, err := http.Get(a.API + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("/metrics without the token: %s, want 401", resp.Status)
		}
	})

	t.Run("every part reports", func(t *testing.T) {
		for _, part := range []struct{ what, prefix string }{
			{"the libp2p host", "libp2p_swarm_"},
			{"identify", "libp2p_identify_"},
			{"the resource manager", "libp2p_rcmgr_"},
			{"bitswap", "ipfs_bitswap_"},
			{"the DHT", "libp2p_kad_dht_"},
			{"the Go runtime", "go_goroutines"},
			{"the node", "allmende_store_bytes"},
			{"the mirror", "allmende_mirror_"},
		} {
			for name, s := range map[string]scrape{"API": api, "mirror": mirror} {
				if s.count(part.prefix) == 0 {
					t.Errorf("%s /metrics: no %s* series from %s", name, part.prefix, part.what)
				}
			}
		}
		if got := fetcher.value(t, "allmende_received_bytes_total"); got < 3<<20 {
			t.Errorf("fetcher: allmende_received_bytes_total = %v, want >= %d", got, 3<<20)
		}
	})

	t.Run("the API and the mirror serve one registry", func(t *testing.T) {
		if a, m := strings.Join(api.names(), " "), strings.Join(mirror.names(), " "); a != m {
			t.Errorf("families differ:\nAPI:    %s\nmirror: %s", a, m)
		}
	})

	t.Run("allmende's names follow Prometheus' conventions", func(t *testing.T) {
		for _, name := range api.names() {
			if !strings.HasPrefix(name, "allmende_") {
				continue
			}
			typ := api.types[name]
			if (typ == "counter") != strings.HasSuffix(name, "_total") {
				t.Errorf("%s is a %s: only counters, and all of them, end in _total", name, typ)
			}
			base := strings.TrimSuffix(name, "_total")
			if strings.Contains(base, "bytes") && !strings.HasSuffix(base, "_bytes") {
				t.Errorf("%s: the unit (bytes) goes last, before _total", name)
			}
			for _, unit := range []string{"_ms", "millis", "_secs", "_minutes", "_kb", "_mb"} {
				if strings.Contains(name, unit) {
					t.Errorf("%s: base units only (_seconds, _bytes)", name)
				}
			}
		}
	})

	t.Run("the dashboard asks for served metrics", func(t *testing.T) {
		for _, name := range dashboardMetrics(t) {
			if !api.has(name) {
				t.Errorf("packaging/grafana-dashboard.json uses %s, which the daemon does not serve", name)
			}
		}
	})
}

// has reports whether name is a family of s or a series of one (the
// _bucket, _sum and _count of a histogram).
func (s scrape) has(name string) bool {
	if _, ok := s.types[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && s.types[base] != "" {
			return true
		}
	}
	return false
}

// metricName finds the metric names in a PromQL expression: identifiers
// with the prefixes of the families a daemon serves.
var metricName = regexp.MustCompile(`\b(?:allmende|libp2p|ipfs|exchange|go|process)_[a-zA-Z0-9_:]*`)

// dashboardMetrics are the metric names the dashboard's queries use.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "packaging", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("packaging/grafana-dashboard.json: %v", err)
	}
	seen := map[string]bool{}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			names := metricName.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q names no metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				seen[n] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	if len(out) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	return out
}
