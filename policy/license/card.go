package license

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxFrontMatter bounds the YAML front matter read from a model card.
const MaxFrontMatter = 256 << 10

// ErrNoFrontMatter means a card has no YAML front matter.
var ErrNoFrontMatter = errors.New("model card has no front matter")

// Card holds the licence fields of a Hugging Face model or dataset card
// (README.md's YAML front matter).
type Card struct {
	// Licenses are the card's license field: one tag, or a list.
	Licenses []string
	// Name and Link are license_name and license_link, set by cards whose
	// license is "other" (e.g. llama3, LICENSE).
	Name, Link string
}

// cardYAML is what is read of the front matter; the rest is ignored.
type cardYAML struct {
	License     any    `yaml:"license"`
	LicenseName string `yaml:"license_name"`
	LicenseLink string `yaml:"license_link"`
}

// ParseCard reads the licence fields from a model card: the YAML between a
// first line "---" and the next "---" line, at most MaxFrontMatter bytes.
func ParseCard(r io.Reader) (Card, error) {
	front, err := frontMatter(r)
	if err != nil {
		return Card{}, err
	}
	var y cardYAML
	if err := yaml.Unmarshal(front, &y); err != nil {
		return Card{}, fmt.Errorf("model card front matter: %w", err)
	}
	c := Card{Name: bounded(y.LicenseName), Link: bounded(y.LicenseLink)}
	switch v := y.License.(type) {
	case nil:
	case string:
		c.Licenses = []string{bounded(v)}
	case []any:
		for _, x := range v[:min(len(v), MaxExprTerms)] {
			if s, ok := x.(string); ok {
				c.Licenses = append(c.Licenses, bounded(s))
			}
		}
	default:
		return Card{}, fmt.Errorf("model card front matter: license is a %T, want a tag or a list of tags", v)
	}
	return c, nil
}

func bounded(s string) string { return strings.TrimSpace(s[:min(len(s), 4*MaxIDLen)]) }

// frontMatter returns the YAML between the card's opening and closing
// "---" lines.
func frontMatter(r io.Reader) ([]byte, error) {
	br := bufio.NewReader(io.LimitReader(r, MaxFrontMatter))
	first, err := br.ReadString('\n')
	if strings.TrimRight(first, "\r\n") != "---" {
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return nil, ErrNoFrontMatter
	}
	var out bytes.Buffer
	for {
		line, err := br.ReadString('\n')
		if strings.TrimRight(line, "\r\n") == "---" {
			return out.Bytes(), nil
		}
		out.WriteString(line)
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("model card front matter: no closing --- within %d bytes", MaxFrontMatter)
		}
		if err != nil {
			return nil, err
		}
	}
}

// ID is the card's licence as one SPDX id or expression: each licence
// normalised (a card's list means every licence applies: joined by AND);
// "other" with a license_name is LicenseRef-<name>; "" if unknown.
func (c Card) ID() string {
	var ids []string
	for _, l := range c.Licenses {
		id := Normalize(l)
		if id == "" && strings.EqualFold(strings.TrimSpace(l), "other") && c.Name != "" {
			id = Normalize(c.Name)
		}
		if id != "" {
			ids = append(ids, id)
		}
	}
	return strings.Join(ids, " AND ")
}

// NormalizeExpr normalises every licence of an expression (terms joined
// by OR or AND, no parentheses) and joins them again, so a manifest holds
// "MIT OR Apache-2.0" for "mit or apache-2.0". Unknown terms drop out; ""
// if none is left.
func NormalizeExpr(expr string) string {
	var alts []string
	for _, alt := range splitExpr(expr, " OR ") {
		var parts []string
		for _, part := range splitExpr(alt, " AND ") {
			if id := Normalize(part); id != "" {
				parts = append(parts, id)
			}
		}
		if len(parts) > 0 {
			alts = append(alts, strings.Join(parts, " AND "))
		}
	}
	return strings.Join(alts, " OR ")
}
