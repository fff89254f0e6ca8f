package p2p

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/allmende/allmende/node/api"
	"github.com/libp2p/go-libp2p/core/pnet"
)

// swarmKeyHeader starts a swarm.key file, the format IPFS uses for
// private networks: the header, the encoding line, the 32-byte key in hex.
const swarmKeyHeader = "/key/swarm/psk/1.0.0/\n/base16/\n"

// swarmKeyBytes is the size of a private network key.
const swarmKeyBytes = 32

// GenerateSwarmKey returns a new random swarm.key file's content.
func GenerateSwarmKey() ([]byte, error) {
	k := make([]byte, swarmKeyBytes)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate swarm key: %w", err)
	}
	return []byte(swarmKeyHeader + hex.EncodeToString(k) + "\n"), nil
}

// loadSwarmKey reads the private network key at path; an empty path means
// the public network (nil key).
func loadSwarmKey(path string) (pnet.PSK, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("swarm.key: %w", err)
	}
	psk, err := pnet.DecodeV1PSK(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("swarm.key %s: %w: %v", path, api.ErrBadInput, err)
	}
	return psk, nil
}

// withoutQUIC drops the listen addresses libp2p cannot use in a private
// network: QUIC, WebTransport and WebRTC have their own encryption and
// refuse a pre-shared key.
func withoutQUIC(listen []string) (kept, dropped []string) {
	for _, a := range listen {
		if strings.Contains(a, "/quic") || strings.Contains(a, "/webtransport") || strings.Contains(a, "/webrtc") {
			dropped = append(dropped, a)
			continue
		}
		kept = append(kept, a)
	}
	return kept, dropped
}
