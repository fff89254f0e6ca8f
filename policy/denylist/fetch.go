package denylist

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/allmende/allmende/store/fsutil"
)

// maxMetaSize bounds the file kept beside a fetched list.
const maxMetaSize = 64 << 10

// userAgent names allmende to list servers.
const userAgent = "allmende (denylist)"

// fetchMeta is what is kept beside a fetched list for the next
// conditional request.
type fetchMeta struct {
	URL          string    `json:"url"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	Fetched      time.Time `json:"fetched"`
}

// cachePath is where the list fetched from u is kept: a name derived from
// the URL, so any URL makes a safe file name.
func (b *Blocker) cachePath(u string) string {
	h := sha256.Sum256([]byte(u))
	return filepath.Join(b.cfg.CacheDir, hex.EncodeToString(h[:16])+Ext)
}

func metaPath(list string) string { return list + ".json" }

// Refresh fetches every URL list now, one after the other, sending the
// ETag and Last-Modified of the copy on disk so an unchanged list costs one
// small answer; a changed list is parsed before it replaces the copy. It
// returns the errors of the lists that failed; their copies on disk stay
// enforced.
func (b *Blocker) Refresh(ctx context.Context) error {
	var errs []error
	for _, s := range b.sources {
		if s.URL == "" {
			continue
		}
		if err := b.fetch(ctx, s.URL); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// fetch refreshes the list from u and enforces the result. Fetches run
// one at a time; answers and reloads go on meanwhile.
func (b *Blocker) fetch(ctx context.Context, u string) error {
	b.fetchMu.Lock()
	defer b.fetchMu.Unlock()
	l, err := b.download(ctx, u)
	if err != nil {
		err = fmt.Errorf("denylist %s: %w", u, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fetched[u] = fetchState{at: time.Now(), err: err}
	if l != nil {
		if info, serr := os.Stat(b.cachePath(u)); serr == nil { // parsed already: reload keeps it
			b.files[b.cachePath(u)] = &fileState{info: info, list: l}
		}
	}
	b.reloadLocked()
	return err
}

// download fetches u, conditionally on the copy on disk, and replaces the
// copy with a changed list once it parsed. It returns the new list, or nil
// if the copy is current.
func (b *Blocker) download(ctx context.Context, u string) (*List, error) {
	file := b.cachePath(u)
	meta := readMeta(file, u)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	if meta != nil {
		if meta.ETag != "" {
			req.Header.Set("If-None-Match", meta.ETag)
		}
		if meta.LastModified != "" {
			req.Header.Set("If-Modified-Since", meta.LastModified)
		}
	}
	client := *b.client
	client.CheckRedirect = httpsOnly
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && meta != nil:
		b.log.Debug("denylist unchanged", "url", u)
		return nil, nil
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("server answered %s", resp.Status)
	case resp.ContentLength > b.cfg.MaxListSize:
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrInvalid, resp.ContentLength, b.cfg.MaxListSize)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, b.cfg.MaxListSize+1))
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	if int64(len(data)) > b.cfg.MaxListSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, b.cfg.MaxListSize)
	}
	l, err := parseLimited(u, bytes.NewReader(data), b.cfg.MaxListSize)
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(file, data, 0o600); err != nil {
		return nil, err
	}
	m := fetchMeta{URL: u, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"), Fetched: time.Now().UTC()}
	raw, _ := json.Marshal(m)
	if err := fsutil.WriteFileAtomic(metaPath(file), raw, 0o600); err != nil {
		return nil, err
	}
	inf := l.Info()
	b.log.Info("denylist fetched", "url", u, "bytes", len(data), "rules", inf.Rules, "skipped", inf.Skipped)
	return l, nil
}

// readMeta returns what was kept about the copy of u at file, or nil if
// there is no usable copy (then the request is unconditional).
func readMeta(file, u string) *fetchMeta {
	if _, err := os.Stat(file); err != nil {
		return nil
	}
	raw, err := os.ReadFile(metaPath(file))
	if err != nil || len(raw) > maxMetaSize {
		return nil
	}
	var m fetchMeta
	if json.Unmarshal(raw, &m) != nil || m.URL != u {
		return nil
	}
	return &m
}

// httpsOnly refuses a redirect away from https, and long redirect chains.
func httpsOnly(req *http.Request, via []*http.Request) error {
	if req.URL.Scheme != "https" {
		return fmt.Errorf("redirected to %s: only https", req.URL.Redacted())
	}
	if len(via) >= 5 {
		return errors.New("more than 5 redirects")
	}
	return nil
}
