// Package ocitools runs the stock OCI clients the tests drive — oras, crane
// and Ollama, built by test/oci/tools.sh from the Go module proxy — on
// 127.0.0.1 only: finding them, an environment that keeps them off the
// network, an in-memory registry (crane registry serve) and ollama serve.
package ocitools

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/allmende/allmende/test/harness"
)

// ToolsEnv names the folder test/oci/tools.sh installed oras, crane and
// ollama into (.ci/run sets it); without it they are looked up on PATH.
const ToolsEnv = "ALLMENDE_OCI_TOOLS"

// Tool returns the path of an OCI client, skipping the test when it is
// not installed (failing under CI, which installs it).
func Tool(t *testing.T, name string) string {
	t.Helper()
	if dir := os.Getenv(ToolsEnv); dir != "" {
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed: .ci/run must run test/oci/tools.sh and set %s", name, ToolsEnv)
		}
		t.Skipf("%s not installed; run test/oci/tools.sh DIR and set %s=DIR", name, ToolsEnv)
	}
	return p
}

// fileExists reports whether p exists.
func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// ClientEnv is an environment in which OCI clients reach only
// loopback: proxies point at a closed port, HOME is the test's.
func ClientEnv(t *testing.T, extra ...string) []string {
	home := t.TempDir()
	return append([]string{"PATH=/usr/bin:/bin", "HOME=" + home, "TMPDIR=" + t.TempDir(),
		"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=127.0.0.1,localhost",
		"DOCKER_CONFIG=" + filepath.Join(home, ".docker")}, extra...)
}

// CraneRegistry runs `crane registry serve` (an in-memory registry) on
// 127.0.0.1 and returns its host:port and a function that stops it.
func CraneRegistry(t *testing.T, crane string) (string, func()) {
	t.Helper()
	cmd := exec.Command(crane, "registry", "serve", "--address", "127.0.0.1:0")
	cmd.Env = ClientEnv(t)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	t.Cleanup(stop)
	port := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`serving on port (\d+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				port <- m[1]
			}
		}
	}()
	select {
	case p := <-port:
		return "127.0.0.1:" + p, stop
	case <-time.After(30 * time.Second):
		t.Fatal("crane registry serve did not say its port")
	}
	return "", stop
}

// OllamaServe runs `ollama serve` on a free loopback port with its store
// at models, and returns the environment its clients need.
func OllamaServe(t *testing.T, bin, models string) []string {
	t.Helper()
	addr := freeLoopbackAddr(t)
	env := ClientEnv(t, "OLLAMA_HOST="+addr, "OLLAMA_MODELS="+models, "OLLAMA_NO_CLOUD=1")
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	logf, err := os.Create(filepath.Join(t.TempDir(), "ollama.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			log, _ := os.ReadFile(logf.Name())
			t.Logf("ollama serve's log:\n%s", log)
		}
	})
	harness.WaitUntil(t, "ollama serve answers", 30*time.Second, 100*time.Millisecond, func() bool {
		code, _, _ := harness.Get("http://"+addr+"/api/version", "", time.Second)
		return code == http.StatusOK
	})
	return env
}

// freeLoopbackAddr returns a 127.0.0.1 address with a port free just now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}
