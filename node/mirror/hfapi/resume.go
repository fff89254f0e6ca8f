package hfapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// How a download from the upstream survives the internet: a dropped
// connection or a stall (no byte for Options.Stall) is resumed with a
// Range request from the first byte not yet read; an answer of 429 or 5xx
// is retried after the upstream's Retry-After (at most MaxRetryAfter) or
// an exponential backoff (a stall is retried at once: it waited already).
// Attempts that bring no new byte are bounded by Options.Retries in a row,
// and all attempts of one download by MaxAttempts. Requests for
// repository info retry the same way, but wait MaxInfoRetryWait at most.
const (
	// DefaultRetries is Options.Retries' default.
	DefaultRetries = 5
	// DefaultRetryWait is the first backoff, doubled after each attempt
	// that brought nothing, up to MaxRetryWait.
	DefaultRetryWait = time.Second
	// MaxRetryWait bounds the exponential backoff.
	MaxRetryWait = 30 * time.Second
	// MaxRetryAfter bounds how long an upstream's Retry-After is honoured.
	MaxRetryAfter = 2 * time.Minute
	// DefaultStall is Options.Stall's default.
	DefaultStall = 30 * time.Second
	// MaxInfoRetryWait bounds the waits between the attempts of a request
	// for repository info, which clients wait on before any byte.
	MaxInfoRetryWait = 5 * time.Second
	// MaxAttempts bounds the requests of one download, resumes included,
	// so an upstream dropping every connection after a few bytes ends.
	MaxAttempts = 64
)

// errStalled cancels an attempt that received nothing for Options.Stall.
var errStalled = errors.New("no byte received")

// statusErr is an upstream's answer other than 200 or 206; retry says
// whether asking again may help (429, 5xx), after says how long the
// upstream asked to wait.
type statusErr struct {
	err   error
	retry bool
	after time.Duration
}

func (e *statusErr) Error() string { return e.err.Error() }
func (e *statusErr) Unwrap() error { return e.err }

// retryable reports whether err may go away if asked again, and how long
// the upstream asked to wait.
func retryable(err error) (bool, time.Duration) {
	var se *statusErr
	switch {
	case errors.As(err, &se):
		return se.retry, se.after
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrRedirectRefused), errors.Is(err, ErrAddressRefused),
		errors.Is(err, ErrMismatch), errors.Is(err, ErrRepoNotFound), errors.Is(err, ErrRevisionNotFound),
		errors.Is(err, ErrEntryNotFound), errors.Is(err, ErrGated):
		return false, 0
	}
	return true, 0 // a transport error: refused, reset, cut short, timed out
}

// retryAfter reads a Retry-After header (seconds or an HTTP date), bounded
// by MaxRetryAfter; zero if absent or unreadable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(v); err == nil {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}

// backoff is the wait before the next attempt after failures attempts in
// a row brought nothing: none after an attempt that brought bytes (a
// dropped connection is resumed at once), else the upstream's Retry-After
// if it sent one, else base doubled per failure up to MaxRetryWait.
func backoff(base time.Duration, failures int, after time.Duration) time.Duration {
	if failures == 0 {
		return 0
	}
	if after > 0 {
		return after
	}
	d := base
	for i := 1; i < failures && d < MaxRetryWait; i++ {
		d *= 2
	}
	return min(d, MaxRetryWait)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// resumingReader reads one file from the upstream across as many requests
// as it takes (see the rules above). It does not check the bytes: a
// verifyingReader around it does, over all of them.
type resumingReader struct {
	c    *Client
	ctx  context.Context
	what string
	url  string
	auth string
	size uint64
	off  uint64

	body     io.ReadCloser
	actx     context.Context // the current attempt's
	cancel   context.CancelCauseFunc
	watch    *time.Timer
	got      bool // the current attempt brought bytes
	attempts int
	failures int // attempts in a row that brought no byte
	after    time.Duration
	lastErr  error
}

func (r *resumingReader) Read(p []byte) (int, error) {
	for {
		if r.body == nil {
			if r.off >= r.size {
				return 0, io.EOF // the verifyingReader checks the rest
			}
			if err := r.connect(); err != nil {
				return 0, err
			}
		}
		// The stall is the upstream's silence while it is read, not the
		// time the caller takes between reads (writing to a slow disk).
		r.watch.Reset(r.c.opts.Stall)
		n, err := r.body.Read(p)
		r.watch.Stop()
		if n > 0 {
			r.off += uint64(n)
			r.got, r.failures, r.after = true, 0, 0
		}
		if err == nil || (errors.Is(err, io.EOF) && r.off >= r.size) {
			return n, err
		}
		r.drop(err)
		if cause := context.Cause(r.ctx); cause != nil {
			return n, cause
		}
		if n > 0 {
			return n, nil // the next Read resumes
		}
	}
}

// drop ends the current attempt after it failed with err.
func (r *resumingReader) drop(err error) {
	if errors.Is(context.Cause(r.actx), errStalled) {
		err = fmt.Errorf("%w: %w for %s", ErrUpstreamTimeout, errStalled, r.c.opts.Stall)
	} else if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF // the connection closed before the last byte
	}
	if !r.got {
		r.failures++
	}
	r.lastErr = err
	r.close()
	r.c.log.Info("upstream download interrupted", "file", r.what, "at", r.off, "of", r.size, "err", err)
}

// connect sends the next request, from r.off, after the backoff the
// failures so far call for.
func (r *resumingReader) connect() error {
	for {
		if r.failures > r.c.opts.Retries || r.attempts >= MaxAttempts {
			return fmt.Errorf("upstream %s: gave up after %d requests, %d in a row without a byte: %w",
				r.what, r.attempts, r.failures, r.lastErr)
		}
		wait := backoff(r.c.opts.RetryWait, r.failures, r.after)
		if errors.Is(r.lastErr, ErrUpstreamTimeout) {
			wait = 0 // the stall was a wait already
		}
		if err := sleep(r.ctx, wait); err != nil {
			return err
		}
		r.attempts++
		err := r.attempt()
		if err == nil {
			return nil
		}
		r.failures++
		r.lastErr = err
		ok, after := retryable(err)
		if !ok || context.Cause(r.ctx) != nil {
			return err
		}
		r.after = after
		r.c.log.Info("upstream download request failed", "file", r.what, "at", r.off, "attempt", r.attempts, "err", err)
	}
}

// attempt sends one request for the bytes from r.off on, under a context
// of its own that a stall cancels; an upstream ignoring the Range has the
// bytes before r.off skipped.
func (r *resumingReader) attempt() error {
	r.actx, r.cancel = context.WithCancelCause(r.ctx)
	r.watch = time.AfterFunc(r.c.opts.Stall, func() { r.cancel(errStalled) })
	r.got = false
	resp, err := r.c.send(r.actx, r.what, r.url, r.auth, r.off)
	if err == nil && r.off > 0 {
		err = r.seekBody(resp)
	}
	if err != nil {
		if errors.Is(context.Cause(r.actx), errStalled) {
			err = fmt.Errorf("%w: %w for %s", ErrUpstreamTimeout, errStalled, r.c.opts.Stall)
		}
		r.close()
		return err
	}
	r.body = resp.Body
	return nil
}

// seekBody makes resp's body start at r.off: a 206 must say so in its
// Content-Range; the bytes a 200 sends before r.off are read and dropped.
func (r *resumingReader) seekBody(resp *http.Response) error {
	if resp.StatusCode == http.StatusPartialContent {
		var start, end uint64
		var total string
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%s", &start, &end, &total); err != nil || start != r.off {
			resp.Body.Close()
			return fmt.Errorf("%w: asked for bytes from %d, got Content-Range %q", ErrUpstream, r.off, resp.Header.Get("Content-Range"))
		}
		return nil
	}
	if _, err := io.CopyN(io.Discard, &progressReader{r: resp.Body, progress: func() { r.watch.Reset(r.c.opts.Stall) }}, int64(r.off)); err != nil {
		resp.Body.Close()
		return fmt.Errorf("skip %d bytes the upstream sent again: %w", r.off, err)
	}
	return nil
}

// close ends the current attempt.
func (r *resumingReader) close() {
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
	if r.cancel != nil {
		r.watch.Stop()
		r.cancel(nil)
		r.cancel = nil
	}
}

func (r *resumingReader) Close() error {
	r.close()
	return nil
}

// progressReader calls progress after each read that brought bytes.
type progressReader struct {
	r        io.Reader
	progress func()
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.progress()
	}
	return n, err
}
