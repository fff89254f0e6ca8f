// Command skewpeer is an honest test peer whose clock is off by -skew: it
// presents a libp2p TLS certificate made at its clock (valid from an hour
// before "its now" for a hundred years, as go-libp2p makes them) and judges
// the certificates of others by its clock. A Go program cannot have its
// clock shifted (the runtime reads the time through the vDSO, so
// libfaketime does not apply, and time namespaces do not shift
// CLOCK_REALTIME), so the skew is applied where a TLS handshake reads the
// clock, which is the only place libp2p does. Noise carries no times.
//
// It listens on 127.0.0.1 over TCP only (go-libp2p's QUIC transport offers
// no way to set its certificate) with the security protocols of -security
// in order of preference, and either serves a file or directory:
//
//	skewpeer -skew 3h -security noise,tls -serve <path>
//
// printing "SKEWPEER <multiaddr with /p2p/id> <root cid>" when ready and
// exiting on SIGTERM or SIGINT, or fetches a CID from a peer:
//
//	skewpeer -skew 3h -security tls -connect <multiaddr> -fetch <cid> -out <path>
//
// printing "CONNECTED <security protocol>" and then "FETCHED <bytes>",
// exiting 1 with the error if the connection or the fetch fails.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/allmende/allmende/protocol"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/test/testpeer"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	ic "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	p2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// certValidity and certBackdate are go-libp2p's: its certificates are valid
// from an hour before they are made for about a hundred years.
const (
	certValidity = 100 * 365 * 24 * time.Hour
	certBackdate = time.Hour
	fetchTimeout = 30 * time.Second
)

func main() {
	skew := flag.Duration("skew", 0, "how far this peer's clock is ahead (negative: behind)")
	security := flag.String("security", "noise,tls", "security protocols, preferred first: noise, tls")
	serve := flag.String("serve", "", "file or directory to serve")
	connect := flag.String("connect", "", "peer to fetch from (multiaddr with /p2p/id)")
	fetch := flag.String("fetch", "", "CID to fetch from -connect")
	out := flag.String("out", "", "where -fetch writes")
	flag.Parse()
	if (*serve == "") == (*fetch == "") || (*fetch != "" && (*connect == "" || *out == "")) {
		fmt.Fprintln(os.Stderr, "usage: skewpeer [-skew D] [-security noise,tls] (-serve PATH | -connect ADDR -fetch CID -out PATH)")
		os.Exit(2)
	}
	if err := run(*skew, *security, *serve, *connect, *fetch, *out); err != nil {
		fmt.Fprintln(os.Stderr, "skewpeer:", err)
		os.Exit(1)
	}
}

func run(skew time.Duration, security, serve, connect, fetch, out string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := []libp2p.Option{
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
	}
	for _, s := range strings.Split(security, ",") {
		switch strings.TrimSpace(s) {
		case "noise":
			opts = append(opts, libp2p.Security(noise.ID, noise.New))
		case "tls":
			opts = append(opts, libp2p.Security(p2ptls.ID, func(id libp2pproto.ID, key ic.PrivKey, muxers []tptu.StreamMuxer) (sec.SecureTransport, error) {
				return newSkewedTLS(id, key, muxers, skew)
			}))
		default:
			return fmt.Errorf("unknown security protocol %q", s)
		}
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return fmt.Errorf("start host: %w", err)
	}
	defer h.Close()

	st, done, err := testpeer.TempStore(ctx, "skewpeer-store-")
	if err != nil {
		return err
	}
	defer done()
	bs := protocol.NewBitswap(ctx, h, nil, st.Blockstore(), protocol.BitswapConfig{})
	defer bs.Close()

	if serve != "" {
		abs, err := filepath.Abs(serve)
		if err != nil {
			return err
		}
		root, err := store.Import(ctx, st.LocalDAG(), abs, store.ImportOptions{})
		if err != nil {
			return fmt.Errorf("import %s: %w", serve, err)
		}
		addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
		if err != nil {
			return err
		}
		fmt.Printf("SKEWPEER %s %s\n", addrs[0], root.Cid())
		<-ctx.Done()
		return nil
	}

	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	a, err := ma.NewMultiaddr(connect)
	if err != nil {
		return fmt.Errorf("-connect: %w", err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return fmt.Errorf("-connect: %w", err)
	}
	if err := h.Connect(ctx, *ai); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	conns := h.Network().ConnsToPeer(ai.ID)
	if len(conns) == 0 {
		return errors.New("connect: no connection")
	}
	// A TLS 1.3 client learns that the server refused its certificate one
	// round trip after the handshake: open a stream to be sure.
	if _, err := h.NewStream(ctx, ai.ID, "/ipfs/id/1.0.0"); err != nil {
		return fmt.Errorf("connection unusable: %w", err)
	}
	fmt.Printf("CONNECTED %s\n", conns[0].ConnState().Security)
	root, err := cid.Decode(fetch)
	if err != nil {
		return fmt.Errorf("-fetch: %w", err)
	}
	dag := merkledag.NewDAGService(blockservice.New(st.Blockstore(), bs))
	if err := merkledag.FetchGraph(ctx, root, dag); err != nil {
		return fmt.Errorf("fetch %s: %w", root, err)
	}
	if err := store.Export(ctx, st.LocalDAG(), root, out); err != nil {
		return fmt.Errorf("export %s: %w", root, err)
	}
	size, err := st.ContentSize(ctx, root)
	if err != nil {
		return err
	}
	fmt.Printf("FETCHED %d\n", size)
	return nil
}

// skewedTLS is libp2p's TLS security transport (/tls/1.0.0) as it behaves
// on a host whose clock is off by skew.
type skewedTLS struct {
	id       *p2ptls.Identity
	key      ic.PrivKey
	local    peer.ID
	muxers   []string
	skew     time.Duration
	protocol libp2pproto.ID
}

var _ sec.SecureTransport = (*skewedTLS)(nil)

func newSkewedTLS(proto libp2pproto.ID, key ic.PrivKey, muxers []tptu.StreamMuxer, skew time.Duration) (*skewedTLS, error) {
	local, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	now := time.Now().Add(skew)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		NotBefore:    now.Add(-certBackdate),
		NotAfter:     now.Add(certValidity),
	}
	tmpl.Subject.SerialNumber = local.String()
	id, err := p2ptls.NewIdentity(key, p2ptls.WithCertTemplate(tmpl))
	if err != nil {
		return nil, fmt.Errorf("TLS identity: %w", err)
	}
	t := &skewedTLS{id: id, key: key, local: local, skew: skew, protocol: proto}
	for _, m := range muxers {
		t.muxers = append(t.muxers, string(m.ID))
	}
	return t, nil
}

// ID implements sec.SecureTransport.
func (t *skewedTLS) ID() libp2pproto.ID { return t.protocol }

// config is the Identity's configuration for p, which also refuses a
// certificate that is not valid at this peer's (skewed) time, as
// crypto/x509 would on a host whose clock reads that time.
func (t *skewedTLS) config(p peer.ID) (*tls.Config, <-chan ic.PubKey) {
	conf, keys := t.id.ConfigForPeer(p)
	verify := conf.VerifyPeerCertificate
	conf.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
		if len(raw) > 0 {
			cert, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			if now := time.Now().Add(t.skew); now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
				return fmt.Errorf("certificate verification failed: not valid at this peer's time %s (valid %s to %s)",
					now.UTC().Format(time.RFC3339), cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
			}
		}
		return verify(raw, chains)
	}
	conf.NextProtos = append(append([]string(nil), t.muxers...), conf.NextProtos...)
	return conf, keys
}

// SecureInbound implements sec.SecureTransport.
func (t *skewedTLS) SecureInbound(ctx context.Context, insecure net.Conn, p peer.ID) (sec.SecureConn, error) {
	conf, keys := t.config(p)
	return t.handshake(ctx, insecure, tls.Server(insecure, conf), keys)
}

// SecureOutbound implements sec.SecureTransport.
func (t *skewedTLS) SecureOutbound(ctx context.Context, insecure net.Conn, p peer.ID) (sec.SecureConn, error) {
	conf, keys := t.config(p)
	return t.handshake(ctx, insecure, tls.Client(insecure, conf), keys)
}

func (t *skewedTLS) handshake(ctx context.Context, insecure net.Conn, c *tls.Conn, keys <-chan ic.PubKey) (sec.SecureConn, error) {
	if err := c.HandshakeContext(ctx); err != nil {
		insecure.Close()
		return nil, err
	}
	var remote ic.PubKey
	select {
	case remote = <-keys:
	default:
	}
	if remote == nil {
		insecure.Close()
		return nil, errors.New("TLS handshake gave no peer key")
	}
	rp, err := peer.IDFromPublicKey(remote)
	if err != nil {
		insecure.Close()
		return nil, err
	}
	muxer := c.ConnectionState().NegotiatedProtocol
	if muxer == "libp2p" {
		muxer = ""
	}
	return &skewedConn{Conn: c, local: t.local, remote: rp, remoteKey: remote, state: network.ConnectionState{
		StreamMultiplexer: libp2pproto.ID(muxer), UsedEarlyMuxerNegotiation: muxer != "",
	}}, nil
}

// skewedConn is a connection secured by skewedTLS.
type skewedConn struct {
	*tls.Conn
	local, remote peer.ID
	remoteKey     ic.PubKey
	state         network.ConnectionState
}

func (c *skewedConn) LocalPeer() peer.ID                 { return c.local }
func (c *skewedConn) RemotePeer() peer.ID                { return c.remote }
func (c *skewedConn) RemotePublicKey() ic.PubKey         { return c.remoteKey }
func (c *skewedConn) ConnState() network.ConnectionState { return c.state }
