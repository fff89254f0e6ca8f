package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Anonymous token auth, as registries that hand out pull tokens to anyone
// do it (Docker Hub, ghcr.io, registry.ollama.ai): a 401 carries
// `WWW-Authenticate: Bearer realm="...",service="...",scope="..."`; a GET of
// the realm with service and scope returns {"token": ...} (or
// "access_token"), sent back as `Authorization: Bearer`.

// Limits of the token dance.
const (
	// MaxChallengeLength bounds a WWW-Authenticate header read.
	MaxChallengeLength = 4 << 10
	// MaxTokenBytes bounds a token endpoint's answer.
	MaxTokenBytes = 64 << 10
	// MaxTokenLength bounds one token.
	MaxTokenLength = 16 << 10
	// MaxCachedTokens bounds the tokens a Client keeps (one per scope);
	// past it the expired ones go, or all of them.
	MaxCachedTokens = 256
	// DefaultTokenLifetime is a token's lifetime when the answer names
	// none (the spec's default of 60 s).
	DefaultTokenLifetime = 60 * time.Second
	// tokenMargin is taken off a token's lifetime so it is not used at the
	// edge of expiring.
	tokenMargin = 5 * time.Second
	// TokenTimeout bounds a token request.
	TokenTimeout = time.Minute
)

// challenge is a parsed Bearer challenge.
type challenge struct {
	realm, service, scope string
}

// parseChallenge finds the Bearer challenge among WWW-Authenticate values.
func parseChallenge(values []string) (challenge, bool) {
	for _, v := range values {
		if len(v) > MaxChallengeLength {
			continue
		}
		scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			continue
		}
		params := parseAuthParams(rest)
		c := challenge{realm: params["realm"], service: params["service"], scope: params["scope"]}
		if c.realm != "" {
			return c, true
		}
	}
	return challenge{}, false
}

// parseAuthParams reads comma-separated key=value pairs whose values may
// be quoted strings with backslash escapes (RFC 9110 auth-param).
func parseAuthParams(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		s = strings.TrimLeft(s, " \t,")
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		var v string
		v, s = authValue(strings.TrimLeft(rest, " \t"))
		out[k] = v
	}
	return out
}

// authValue reads a token or quoted string from the start of s and returns
// it with what follows.
func authValue(s string) (string, string) {
	if !strings.HasPrefix(s, `"`) {
		v, rest, _ := strings.Cut(s, ",")
		return strings.TrimSpace(v), rest
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '"':
			return b.String(), s[i+1:]
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), ""
}

// tokenCache keeps pull tokens by repository name.
type tokenCache struct {
	mu     sync.Mutex
	tokens map[string]cachedToken
}

type cachedToken struct {
	token   string
	expires time.Time
}

func (tc *tokenCache) get(name string, now time.Time) string {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	t, ok := tc.tokens[name]
	if !ok || !now.Before(t.expires) {
		return ""
	}
	return t.token
}

func (tc *tokenCache) put(name string, t cachedToken, now time.Time) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.tokens == nil {
		tc.tokens = map[string]cachedToken{}
	}
	if len(tc.tokens) >= MaxCachedTokens {
		for k, v := range tc.tokens {
			if !now.Before(v.expires) {
				delete(tc.tokens, k)
			}
		}
		if len(tc.tokens) >= MaxCachedTokens {
			clear(tc.tokens)
		}
	}
	tc.tokens[name] = t
}

// realmURL checks a challenge's realm: https, or the upstream's own scheme
// and host, without credentials. Where it may connect is then up to the
// HTTP client's rules, as for any request.
func (c *Client) realmURL(ch challenge) (*url.URL, error) {
	u, err := url.Parse(ch.realm)
	if err != nil {
		return nil, fmt.Errorf("%w: token realm %q: %w", ErrUpstream, clip(ch.realm), err)
	}
	own := u.Scheme == c.base.Scheme && strings.EqualFold(u.Host, c.base.Host)
	if (u.Scheme != "https" && !own) || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("%w: token realm %q is neither https nor the upstream itself", ErrUpstream, clip(ch.realm))
	}
	q := u.Query()
	if ch.service != "" {
		q.Set("service", ch.service)
	}
	if ch.scope != "" {
		q.Set("scope", ch.scope)
	}
	u.RawQuery = q.Encode()
	return u, nil
}

// fetchToken gets an anonymous token for a challenge and keeps it for
// requests about repository name.
func (c *Client) fetchToken(ctx context.Context, name string, ch challenge) (string, error) {
	u, err := c.realmURL(ch)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, TokenTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("%w: token: %w", ErrUpstream, err)
	}
	req.Header.Set("User-Agent", UserAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: token: %w", ErrUpstream, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", c.statusError(resp, "token", ErrDenied)
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxTokenBytes)).Decode(&body); err != nil {
		return "", fmt.Errorf("%w: token answer: %w", ErrUpstream, err)
	}
	tok := body.Token
	if tok == "" {
		tok = body.AccessToken
	}
	if tok == "" || len(tok) > MaxTokenLength || strings.ContainsAny(tok, "\r\n\x00 ") {
		return "", fmt.Errorf("%w: token answer holds no usable token", ErrUpstream)
	}
	life := DefaultTokenLifetime
	if body.ExpiresIn > int64(DefaultTokenLifetime/time.Second) && body.ExpiresIn < int64(24*time.Hour/time.Second) {
		life = time.Duration(body.ExpiresIn) * time.Second
	}
	now := time.Now()
	c.tokens.put(name, cachedToken{token: tok, expires: now.Add(life - tokenMargin)}, now)
	return tok, nil
}
