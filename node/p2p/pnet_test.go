package p2p

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/allmende/allmende/node/api"
)

func TestSwarmKey(t *testing.T) {
	good, err := GenerateSwarmKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content []byte
		wantErr error
	}{
		{"a generated key loads", good, nil},
		{"a wrong header is bad input", []byte("/key/swarm/psk/2.0.0/\n/base16/\n00\n"), api.ErrBadInput},
		{"a short key is bad input", []byte(swarmKeyHeader + "abcd\n"), api.ErrBadInput},
		{"garbage is bad input", []byte("not a key"), api.ErrBadInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "swarm.key")
			if err := os.WriteFile(path, tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			psk, err := loadSwarmKey(path)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && len(psk) != swarmKeyBytes {
				t.Errorf("key of %d bytes, want %d", len(psk), swarmKeyBytes)
			}
		})
	}
	if psk, err := loadSwarmKey(""); psk != nil || err != nil {
		t.Errorf("no path: %v, %v; want the public network", psk, err)
	}
}

func TestWithoutQUIC(t *testing.T) {
	kept, dropped := withoutQUIC([]string{
		"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1",
		"/ip6/::/udp/4001/quic-v1/webtransport", "/ip6/::/tcp/4001",
	})
	if want := []string{"/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/4001"}; !slices.Equal(kept, want) {
		t.Errorf("kept %v, want %v", kept, want)
	}
	if len(dropped) != 2 {
		t.Errorf("dropped %v, want the two QUIC addresses", dropped)
	}
}
