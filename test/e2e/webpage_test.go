package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/allmende/allmende/test/harness"
)

// chromiumFlags keep headless Chromium off every network but the page's.
var chromiumFlags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
	"--hide-scrollbars",
}

func chromium(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed: .ci/run must install it")
		}
		t.Skip("chromium not installed (apt-get install chromium)")
	}
	return bin
}

func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	all := append(append(append([]string{}, chromiumFlags...), "--user-data-dir="+t.TempDir()), args...)
	cmd := exec.Command(bin, all...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Start()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("chromium: %v\n%s", err, errb.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("chromium did not finish in 60 s")
	}
	return out.Bytes()
}

// TestWebPageInChromium renders the mirror's page with two models in
// headless Chromium at phone width. Set ALLMENDE_SCREENSHOT=FILE to keep the
// screenshot.
func TestWebPageInChromium(t *testing.T) {
	bin := chromium(t)
	m := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0")
	m.Start()
	m.MustRun("import", tinyRepo(t), "--name", "school/tiny-llama", "--license", "apache-2.0")
	ds := filepath.Join(t.TempDir(), "poems")
	harness.WriteFile(t, filepath.Join(ds, "train.csv"), bytes.Repeat([]byte("line,poem\n"), 5000))
	m.MustRun("import", ds, "--name", "school/poems", "--kind", "dataset", "--license", "cc-by-4.0")
	base := m.MirrorURL(t)

	dom := runChromium(t, bin, "--dump-dom", base+"/")
	for _, want := range []string{"school/tiny-llama", "school/poems", "HF_ENDPOINT=http://", "hf download school/tiny-llama", "hf download --repo-type dataset school/poems",
		"allmende fetch school/tiny-llama@main", "/school/tiny-llama/resolve/main/model.bin", "/datasets/school/poems/resolve/main/train.csv",
		`<a href="https://spdx.org/licenses/Apache-2.0.html">Apache-2.0</a>`, `<a href="https://spdx.org/licenses/CC-BY-4.0.html">CC-BY-4.0</a>`} {
		if !bytes.Contains(dom, []byte(want)) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
	if bytes.Contains(dom, []byte("huggingface-cli")) {
		t.Error("the page shows the deprecated huggingface-cli, not hf")
	}
	shot := os.Getenv("ALLMENDE_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "page.png")
	}
	runChromium(t, bin, "--screenshot="+shot, "--window-size=412,1300", base+"/")
	png, err := os.ReadFile(shot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) || len(png) < 10_000 {
		t.Errorf("screenshot %s: %d bytes, %v", shot, len(png), err)
	}
}
