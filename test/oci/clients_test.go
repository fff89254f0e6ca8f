// Package oci_test drives stock OCI clients — oras, crane and Ollama itself,
// built from the Go module proxy — against node/mirror/oci's Handler
// serving an Ollama store (store/ollama), and checks that Ollama lists a
// model store/ollama wrote. Traffic stays on 127.0.0.1.
package oci_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"

	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/node/mirror/oci"
	"github.com/allmende/allmende/store/ollama"
	"github.com/allmende/allmende/test/ocitools"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// storeBackend serves the models of an Ollama store that carry the given
// host, read-only: the repository is namespace/model, as Ollama asks.
type storeBackend struct {
	s    *ollama.Store
	host string
}

func (b storeBackend) models(name string) ([]*ollama.Model, error) {
	ns, model, ok := strings.Cut(name, "/")
	if !ok || strings.Contains(model, "/") {
		return nil, oci.ErrNameUnknown
	}
	all, _ := b.s.List()
	var out []*ollama.Model
	for _, m := range all {
		if m.Name.Host == b.host && m.Name.Namespace == ns && m.Name.Model == model {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, oci.ErrNameUnknown
	}
	return out, nil
}

func (b storeBackend) Manifest(_ context.Context, name string, ref oci.Reference) (*oci.Manifest, error) {
	models, err := b.models(name)
	if err != nil {
		return nil, err
	}
	for _, m := range models {
		if m.Name.Tag == ref.Tag || m.Digest == ref.Digest {
			mt := m.Parsed.MediaType
			if mt == "" {
				mt = ocispec.MediaTypeImageManifest
			}
			return &oci.Manifest{MediaType: mt, Data: m.Manifest}, nil
		}
	}
	return nil, oci.ErrManifestUnknown
}

func (b storeBackend) Blob(_ context.Context, name string, d digest.Digest) (io.ReadSeekCloser, error) {
	models, err := b.models(name)
	if err != nil {
		return nil, err
	}
	for _, m := range models {
		for _, blob := range m.Blobs {
			if blob.Digest == d {
				return os.Open(blob.Path)
			}
		}
	}
	return nil, oci.ErrBlobUnknown
}

func (b storeBackend) Tags(_ context.Context, name string) ([]string, error) {
	models, err := b.models(name)
	var tags []string
	for _, m := range models {
		tags = append(tags, m.Name.Tag)
	}
	return tags, err
}

// tinyGGUF is a GGUF v3 file with no tensors and the metadata readers
// look for first.
func tinyGGUF(name string) []byte {
	var b bytes.Buffer
	str := func(s string) {
		binary.Write(&b, binary.LittleEndian, uint64(len(s)))
		b.WriteString(s)
	}
	const typeUint32, typeString = 4, 8
	b.WriteString("GGUF")
	binary.Write(&b, binary.LittleEndian, []any{uint32(3), uint64(0), uint64(3)})
	str("general.architecture")
	binary.Write(&b, binary.LittleEndian, uint32(typeString))
	str("llama")
	str("general.name")
	binary.Write(&b, binary.LittleEndian, uint32(typeString))
	str(name)
	str("llama.context_length")
	binary.Write(&b, binary.LittleEndian, uint32(typeUint32))
	binary.Write(&b, binary.LittleEndian, uint32(2048))
	return b.Bytes()
}

// model is an Ollama-shaped model: manifest and blobs by digest. Each
// layer is titled so that oras pull writes it as a file.
type model struct {
	manifest []byte
	blobs    map[digest.Digest][]byte
	titles   map[string][]byte
}

func newModel(t *testing.T, name string) *model {
	m := &model{blobs: map[digest.Digest][]byte{}, titles: map[string][]byte{}}
	desc := func(mt, title string, data []byte) ocispec.Descriptor {
		d := digest.SHA256.FromBytes(data)
		m.blobs[d] = data
		out := ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(data))}
		if title != "" {
			m.titles[title] = data
			out.Annotations = map[string]string{ocispec.AnnotationTitle: title}
		}
		return out
	}
	var err error
	m.manifest, err = json.Marshal(ollama.Manifest{
		SchemaVersion: 2,
		MediaType:     ollama.MediaTypeManifest,
		Config: desc(ollama.MediaTypeConfig, "", []byte(`{"model_format":"gguf","model_family":"llama","model_families":["llama"],`+
			`"model_type":"0M","file_type":"F32","architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)),
		Layers: []ocispec.Descriptor{
			desc(ollama.MediaTypeModel, "model.gguf", tinyGGUF(name)),
			desc(ollama.MediaTypeTemplate, "template", []byte("{{ .Prompt }}")),
			desc(ollama.MediaTypeParams, "params", []byte(`{"stop":["<|end|>"]}`)),
			desc(ollama.MediaTypeLicense, "license", []byte("test license for "+name+"\n")),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *model) open(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(m.blobs[d.Digest])), nil
}

// serveStore writes m as host/library/tiny:latest into a new Ollama store
// and serves the store's models of that host with oci.Handler on
// 127.0.0.1. It returns the registry's host:port.
func serveStore(t *testing.T, m *model) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := lis.Addr().String()
	s, err := ollama.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.WriteModel(context.Background(), ollama.Name{Host: host, Namespace: "library", Model: "tiny", Tag: "latest"}, m.manifest, m.open); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(oci.Handler(storeBackend{s: s, host: host}, slog.New(slog.DiscardHandler)))
	srv.Listener.Close()
	srv.Listener = lis
	srv.Start()
	t.Cleanup(srv.Close)
	return host
}

// run runs a client program and returns its output, failing the test
// (with the output) if it fails.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestOrasAndCranePullFromHandler(t *testing.T) {
	oras, crane := ocitools.Tool(t, "oras"), ocitools.Tool(t, "crane")
	m := newModel(t, "oras")
	reg := serveStore(t, m)
	ref := reg + "/library/tiny:latest"
	env := ocitools.ClientEnv(t)

	out := t.TempDir()
	run(t, env, oras, "pull", "--plain-http", "--no-tty", ref, "-o", out)
	for title, want := range m.titles {
		got, err := os.ReadFile(filepath.Join(out, title))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("oras pull: %s: %v", title, err)
		}
	}

	want := digest.SHA256.FromBytes(m.manifest).String()
	if got := strings.TrimSpace(run(t, env, crane, "digest", "--insecure", ref)); got != want {
		t.Errorf("crane digest %s, want %s", got, want)
	}
	if got := run(t, env, crane, "manifest", "--insecure", ref); got != string(m.manifest) {
		t.Errorf("crane manifest differs:\n%s", got)
	}
	layout := filepath.Join(t.TempDir(), "layout")
	run(t, env, crane, "pull", "--insecure", "--format", "oci", ref, layout)
	for d, b := range m.blobs {
		got, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", d.Encoded()))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("crane pull: blob %s: %v", d, err)
		}
	}
	// Push is refused, as a read-only registry should.
	cmd := exec.Command(crane, "copy", "--insecure", ref, reg+"/library/other:latest")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("crane copy into the read-only registry succeeded:\n%s", out)
	}
}

// TestOllamaPullsFromHandlerAndListsWrittenModels: `ollama pull --insecure`
// gets a model from oci.Handler into Ollama's own store, byte for byte;
// and a model store/ollama wrote into that store beforehand is listed by
// `ollama list` next to it.
func TestOllamaPullsFromHandlerAndListsWrittenModels(t *testing.T) {
	bin := ocitools.Tool(t, "ollama")
	pulled, written := newModel(t, "pulled"), newModel(t, "written")
	reg := serveStore(t, pulled)

	models := filepath.Join(t.TempDir(), "models")
	dst, err := ollama.Create(models)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := dst.WriteModel(context.Background(), ollama.Name{Host: ollama.DefaultHost, Namespace: "library", Model: "written", Tag: "1b"}, written.manifest, written.open); err != nil {
		t.Fatal(err)
	}
	env := ocitools.OllamaServe(t, bin, models)

	run(t, env, bin, "pull", "--insecure", reg+"/library/tiny:latest")
	list := run(t, env, bin, "list")
	t.Logf("ollama list:\n%s", list)
	for _, want := range []string{reg + "/library/tiny:latest", "written:1b"} {
		if !strings.Contains(list, want) {
			t.Errorf("ollama list does not show %s:\n%s", want, list)
		}
	}
	got, err := dst.Read(ollama.Name{Host: reg, Namespace: "library", Model: "tiny", Tag: "latest"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Manifest, pulled.manifest) {
		t.Errorf("Ollama stored another manifest:\n%s", got.Manifest)
	}
	for _, b := range got.Blobs {
		data, err := os.ReadFile(b.Path)
		if err != nil || !bytes.Equal(data, pulled.blobs[b.Digest]) {
			t.Errorf("blob %s: %v", b.Digest, err)
		}
	}
	if short := digest.SHA256.FromBytes(pulled.manifest).Encoded()[:12]; !strings.Contains(list, short) {
		t.Errorf("ollama list does not show the ID %s:\n%s", short, list)
	}
}

// TestOllamaNeedsLocation documents why the Handler sets Location on blob
// answers: Ollama fails on a registry that serves blobs with a plain 200
// and no Location (as distribution and go-containerregistry's registry do).
func TestOllamaNeedsLocation(t *testing.T) {
	bin := ocitools.Tool(t, "ollama")
	m := newModel(t, "x")
	reg := serveStore(t, m)
	// The same registry with the Location header taken off.
	strip := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := (&http.Transport{}).RoundTrip(cloneTo(r, reg))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			if k != "Location" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	defer strip.Close()
	env := ocitools.OllamaServe(t, bin, filepath.Join(t.TempDir(), "models"))
	cmd := exec.Command(bin, "pull", "--insecure", strings.TrimPrefix(strip.URL, "http://")+"/library/tiny:latest")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(out), "no Location header") {
		t.Errorf("ollama pull from a registry without Location: %v\n%s\n(if this passes, Ollama no longer needs the header)", err, out)
	}
}

func cloneTo(r *http.Request, host string) *http.Request {
	c := r.Clone(r.Context())
	c.RequestURI = ""
	c.URL.Scheme, c.URL.Host, c.Host = "http", host, host
	return c
}

// TestPushScriptFillsARegistry: test/oci/push-ollama.sh pushes an
// Ollama-shaped model with oras into a real registry (crane registry
// serve), in both manifest forms, and oci.Client reads back the same
// manifest digest and every file's bytes.
func TestPushScriptFillsARegistry(t *testing.T) {
	oras, crane := ocitools.Tool(t, "oras"), ocitools.Tool(t, "crane")
	reg, _ := ocitools.CraneRegistry(t, crane)
	c, err := oci.NewClient("http://"+reg, &http.Client{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flag, repo, mediaType string
	}{
		{"", "library/tiny", oci.MediaTypeDockerManifest},
		{"--oci", "library/tiny-oci", ocispec.MediaTypeImageManifest},
	} {
		t.Run(tc.mediaType, func(t *testing.T) {
			work := t.TempDir()
			args := []string{reg, tc.repo + ":latest", work}
			if tc.flag != "" {
				args = append([]string{tc.flag}, args...)
			}
			out := run(t, ocitools.ClientEnv(t, "ORAS="+oras), "./push-ollama.sh", args...)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			pushed := lines[len(lines)-1]
			m, err := c.Manifest(context.Background(), tc.repo, oci.Reference{Tag: "latest"})
			if err != nil {
				t.Fatal(err)
			}
			if m.Digest().String() != pushed || m.MediaType != tc.mediaType {
				t.Fatalf("got %s %s, the script pushed %s %s", m.MediaType, m.Digest(), tc.mediaType, pushed)
			}
			p, err := oci.ParseManifest(m.MediaType, m.Data)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Layers) != 4 || p.Layers[0].MediaType != ollama.MediaTypeModel || p.Config.MediaType != ollama.MediaTypeConfig {
				t.Fatalf("not Ollama-shaped: %s", m.Data)
			}
			for _, d := range p.Blobs() {
				rc, err := c.Blob(context.Background(), tc.repo, d.Digest, d.Size)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatalf("blob %s: %v", d.Digest, err)
				}
				name := d.Annotations[ocispec.AnnotationTitle]
				if name == "" {
					name = "config.json"
				}
				if want, _ := os.ReadFile(filepath.Join(work, "files", name)); !bytes.Equal(got, want) {
					t.Errorf("%s differs from the file pushed", name)
				}
			}
		})
	}
}
