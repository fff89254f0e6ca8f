package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/test/harness"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// TestHostileManifestFromPeer: a peer serves a signed name record for a
// manifest whose file path escapes the output. The fetch is refused when
// the manifest is decoded, before any file is fetched, and nothing is
// written at the output or beside it.
func TestHostileManifestFromPeer(t *testing.T) {
	peer := harness.NewNode(t)
	peer.Start()
	content := []byte("pwned\n")
	payload := filepath.Join(t.TempDir(), "payload")
	harness.WriteFile(t, payload, content)
	fileCID := peer.Add(payload)
	sum := sha256.Sum256(content)
	sk, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}

	victim := harness.NewNode(t)
	victim.Start()
	victim.MustRun("connect", peer.TCPAddr())

	for i, bad := range []string{"../escape.txt", "/tmp/allmende-absolute-escape.txt", `..\escape.txt`, "a/../../escape.txt"} {
		name := "evil/model" + strings.Repeat("x", i)
		m := manifest.Manifest{Version: manifest.Version, Kind: manifest.KindModel, Name: name, Revision: "main",
			Commit: strings.Repeat("ab", 20), Root: fileCID,
			Files: []manifest.File{{Path: bad, Size: uint64(len(content)), SHA256: hex.EncodeToString(sum[:]), CID: fileCID}}}
		raw, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		mf := filepath.Join(t.TempDir(), "manifest.json")
		harness.WriteFile(t, mf, raw)
		mc := peer.Add(mf)
		rec := &manifest.Record{Name: name, Revision: "main", Manifest: mc, Seq: 1, Expires: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}
		if err := rec.Sign(sk); err != nil {
			t.Fatal(err)
		}
		enc, err := rec.Encode()
		if err != nil {
			t.Fatal(err)
		}
		harness.WriteFile(t, filepath.Join(peer.Home, "models", "records", strings.ReplaceAll(name, "/", "--")+"@main.json"), enc)

		parent := t.TempDir()
		out := filepath.Join(parent, "out")
		before, _ := victim.Stats()
		r := victim.Run("fetch", name, "-o", out, "--trust-any")
		after, _ := victim.Stats()
		t.Logf("path %q: exit %d: %s", bad, r.Code, strings.TrimSpace(r.Stderr))
		if r.Code == 0 {
			t.Errorf("fetch of a manifest with path %q succeeded", bad)
		}
		if !strings.Contains(r.Stderr, "invalid manifest") {
			t.Errorf("path %q: the error does not say the manifest is invalid: %s", bad, r.Stderr)
		}
		if entries, _ := os.ReadDir(parent); len(entries) != 0 {
			t.Errorf("path %q: the fetch wrote %v beside the output", bad, entries)
		}
		for _, p := range []string{filepath.Join(parent, "..", "escape.txt"), "/tmp/allmende-absolute-escape.txt"} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("path %q: %s was written", bad, p)
			}
		}
		if got := after.BlocksReceived - before.BlocksReceived; got > 1 {
			t.Errorf("path %q: %d blocks fetched, want at most the manifest's", bad, got)
		}
	}
}
