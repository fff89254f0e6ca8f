package hfapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/allmende/allmende/store/manifest"
)

func TestClientAgainstHandler(t *testing.T) {
	srv, content := newTestServer(t)
	c, err := NewClient(srv.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	repo, err := c.Repo(ctx, Model, "org/tiny", "main")
	if err != nil {
		t.Fatal(err)
	}
	if repo.Commit != commit || len(repo.Files) != 2 || repo.License != "apache-2.0" {
		t.Fatalf("repo = %+v", repo)
	}
	want := map[string][]byte{"config.json": content["c"], "weights/model.safetensors": content["w"]}
	for _, f := range repo.Files {
		rc, err := c.Download(ctx, repo, f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want[f.Path]) {
			t.Errorf("%s: %d bytes, %v", f.Path, len(got), err)
		}
	}
	if _, err := c.Repo(ctx, Model, "org/none", "main"); !errors.Is(err, ErrRepoNotFound) {
		t.Errorf("missing repo: %v", err)
	}
	if _, err := c.Repo(ctx, Model, "org/tiny", "v7"); !errors.Is(err, ErrRevisionNotFound) {
		t.Errorf("missing revision: %v", err)
	}
}

func TestVerifyingReader(t *testing.T) {
	data := []byte("some weights")
	good := File{Path: "w", Size: uint64(len(data)), BlobSHA1: manifest.GitBlobSHA1(data)}
	tests := []struct {
		name string
		f    File
		body []byte
		ok   bool
	}{
		{"matching bytes pass", good, data, true},
		{"one flipped byte is caught at EOF", good, []byte("some weighTs"), false},
		{"a short body is caught", good, data[:5], false},
		{"a long body is caught before it is all read", good, append(data, '!'), false},
		{"LFS files are checked by sha256", File{Path: "w", Size: uint64(len(data)), SHA256: "00"}, data, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := io.ReadAll(NewVerifyingReader(io.NopCloser(bytes.NewReader(tt.body)), tt.f))
			if (err == nil) != tt.ok || (!tt.ok && !errors.Is(err, ErrMismatch)) {
				t.Errorf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
