package main

import (
	"slices"
	"strings"
	"testing"
)

func TestSpreadArgs(t *testing.T) {
	const dflt = hfCacheDefault
	tests := []struct {
		why     string
		line    string
		include []string
		exclude []string
		hfCache string
		args    []string
	}{
		{"--hf-cache DIR after the name, as hf's --cache-dir", "fetch org/m --hf-cache /c", nil, nil, "/c", []string{"org/m"}},
		{"--hf-cache=DIR as before", "fetch org/m --hf-cache=/c", nil, nil, "/c", []string{"org/m"}},
		{"--hf-cache DIR before the name", "fetch --hf-cache /c org/m", nil, nil, "/c", []string{"org/m"}},
		{"--hf-cache alone before the name leaves the name", "fetch --hf-cache org/m", nil, nil, dflt, []string{"org/m"}},
		{"--hf-cache alone at the end", "fetch org/m --hf-cache", nil, nil, dflt, []string{"org/m"}},
		{"--hf-cache alone before another flag", "fetch org/m --hf-cache --include *.json", []string{"*.json"}, nil, dflt, []string{"org/m"}},
		{"--hf-cache alone before a boolean flag and the name", "fetch --hf-cache --trust-any org/m", nil, nil, dflt, []string{"org/m"}},
		{"--hf-cache takes one word: a second is an argument (and an error)", "fetch org/m --hf-cache /c x", nil, nil, "/c", []string{"org/m", "x"}},
		{"--include with several words, as hf download's", "fetch org/m --include *.json *.safetensors --exclude x*", []string{"*.json", "*.safetensors"}, []string{"x*"}, "", []string{"org/m"}},
		{"--include with several words before the name leaves the name", "fetch --include *.json docs/* org/m", []string{"*.json", "docs/*"}, nil, "", []string{"org/m"}},
		{"--include repeated and comma-separated", "fetch org/m --include a --include b,c", []string{"a", "b", "c"}, nil, "", []string{"org/m"}},
		{"--include=PATTERN takes that one", "fetch org/m --include=a b", []string{"a"}, nil, "", []string{"org/m", "b"}},
		{"both spread flags before the name", "fetch --include a b --hf-cache /c org/m", []string{"a", "b"}, nil, "/c", []string{"org/m"}},
		{"a flag's value is not an argument", "fetch -o out org/m --include a", []string{"a"}, nil, "", []string{"org/m"}},
		{"a global flag's value is not an argument", "--home /h fetch --fetch-timeout 5s --hf-cache /c org/m", nil, nil, "/c", []string{"org/m"}},
		{"after -- every word is an argument", "fetch --include a -- org/m", []string{"a"}, nil, "", []string{"org/m"}},
		{"inspect spreads --include too", "inspect --include a b org/m", []string{"a", "b"}, nil, "", []string{"org/m"}},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			root := newRootCmd()
			out := spreadArgs(root, strings.Fields(tt.line))
			cmd, rest, err := root.Find(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.ParseFlags(rest); err != nil {
				t.Fatalf("%q: %v", out, err)
			}
			f := cmd.Flags()
			include, _ := f.GetStringSlice("include")
			exclude, _ := f.GetStringSlice("exclude")
			hfCache := ""
			if f.Lookup("hf-cache") != nil {
				hfCache, _ = f.GetString("hf-cache")
			}
			if !slices.Equal(include, tt.include) || !slices.Equal(exclude, tt.exclude) || hfCache != tt.hfCache || !slices.Equal(f.Args(), tt.args) {
				t.Errorf("%q became %q: include %q exclude %q hf-cache %q args %q; want %q %q %q %q",
					tt.line, out, include, exclude, hfCache, f.Args(), tt.include, tt.exclude, tt.hfCache, tt.args)
			}
		})
	}
}

func TestSpreadArgsLeavesOtherCommands(t *testing.T) {
	for _, line := range []string{"add a b", "connect /ip4/127.0.0.1/tcp/1 --json", "help fetch", "__complete fetch --hf-cache ", "nosuch --include a b"} {
		args := strings.Split(line, " ")
		if got := spreadArgs(newRootCmd(), args); !slices.Equal(got, args) {
			t.Errorf("%q became %q", args, got)
		}
	}
}
