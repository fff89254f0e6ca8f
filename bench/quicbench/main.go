// Command quicbench measures what a libp2p stream moves on loopback over
// TCP (Noise, yamux) and over QUIC, between two processes set up like an
// allmende host (go-libp2p v0.51.0, its resource manager scaled to 1 GiB),
// with CPU profiles of both ends (issue 15: QUIC fetches ran at a third of
// TCP's rate). It starts the serving end as a child process of itself, asks
// it for -size MiB over -streams streams at once, and prints one line per
// run: transport, streams, seconds, MB/s, CPU seconds of each end.
//
// With -transport mixed both ends have both transports, as allmende's
// default profile does, and the line says which one the connection took:
// with -ranker default go-libp2p's dial ranker (QUIC first), with -ranker
// tcpfirst one that dials TCP first to private and loopback addresses
// (tcpFirstOnLAN, the remedy proposed for part 2 of issue 15).
//
// The tuning it can try is what go-libp2p v0.51.0 exposes: the receive
// windows of the dialling side's QUIC config (quicreuse.ConnManager's
// ClientConfig; the listening side's config is not reachable), the UDP
// socket buffers (quicreuse.OverrideListenUDP), and, through quic-go's
// environment, GSO (QUIC_GO_DISABLE_GSO=1). The fetching end dials, so its
// receive windows are the ones that count.
//
// Usage:
//
//	quicbench [-transport tcp|quic|both|mixed] [-ranker default|tcpfirst]
//	          [-size MiB] [-streams 1,4] [-window MiB] [-udpbuf bytes]
//	          [-profile DIR] [-repeat N]
//
// Exit status: 0 on success, 1 on failure, 2 on bad usage.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/quic-go/quic-go"
)

// benchID is the protocol the serving end answers: the client sends the
// byte count it wants (8 bytes, big-endian), the server sends that many.
const benchID = protocol.ID("/allmende/quicbench/1.0.0")

// Settings mirroring allmende and the bulk protocol.
const (
	// maxMemory is allmende's resources.max_memory default.
	maxMemory = 1 << 30
	// maxFDs is what the resource manager is scaled for.
	maxFDs = 4096
	// chunk is one 1 MiB leaf: the server writes, the client reads, in
	// these units (as the bulk protocol does).
	chunk = 1 << 20
	// readBuffer is the bulk client's buffered reader size.
	readBuffer = 64 << 10
	// readyTimeout bounds the child's start.
	readyTimeout = 30 * time.Second
	// transferTimeout bounds one run.
	transferTimeout = 10 * time.Minute
)

type options struct {
	transports []string
	sizeMiB    int64
	streams    []int
	windowMiB  int
	udpBuf     int
	profile    string
	repeat     int
	ranker     string
	serve      string // the child's transport: set when running as the server
}

func main() {
	var o options
	var transport, streams string
	flag.StringVar(&transport, "transport", "both", "tcp, quic, both (one after the other) or mixed (both in one host)")
	flag.StringVar(&o.ranker, "ranker", "default", "dial ranker with -transport mixed: default or tcpfirst")
	flag.Int64Var(&o.sizeMiB, "size", 1024, "MiB to move per run")
	flag.StringVar(&streams, "streams", "1,4", "comma-separated stream counts to try")
	flag.IntVar(&o.windowMiB, "window", 0, "QUIC receive window of the fetching end in MiB (stream; the connection's is 1.5×); 0 keeps go-libp2p's 10/15 MB")
	flag.IntVar(&o.udpBuf, "udpbuf", 0, "UDP socket buffer size to ask the kernel for (capped by net.core.rmem_max unless root); 0 leaves it to quic-go")
	flag.StringVar(&o.profile, "profile", "", "write CPU profiles of both ends into this directory")
	flag.IntVar(&o.repeat, "repeat", 1, "runs per setting (the best is printed)")
	flag.StringVar(&o.serve, "serve", "", "internal: run as the serving end over this transport")
	flag.Parse()
	if err := parse(&o, transport, streams); err != nil {
		fmt.Fprintln(os.Stderr, "quicbench:", err)
		os.Exit(2)
	}
	var err error
	if o.serve != "" {
		err = serve(o)
	} else {
		err = bench(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "quicbench:", err)
		os.Exit(1)
	}
}

func parse(o *options, transport, streams string) error {
	switch transport {
	case "both":
		o.transports = []string{"tcp", "quic"}
	case "tcp", "quic", "mixed":
		o.transports = []string{transport}
	default:
		return fmt.Errorf("-transport %q: want tcp, quic, both or mixed", transport)
	}
	if o.ranker != "default" && o.ranker != "tcpfirst" {
		return fmt.Errorf("-ranker %q: want default or tcpfirst", o.ranker)
	}
	for _, s := range strings.Split(streams, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 64 {
			return fmt.Errorf("-streams %q: want counts from 1 to 64", streams)
		}
		o.streams = append(o.streams, n)
	}
	if o.sizeMiB < 1 || o.repeat < 1 || o.windowMiB < 0 || o.udpBuf < 0 {
		return errors.New("-size and -repeat must be positive, -window and -udpbuf not negative")
	}
	return nil
}

// newHost builds a host with one transport, set up as allmende's.
func newHost(o options, transport string, listen bool) (host.Host, error) {
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	limits := rcmgr.PartialLimitConfig{System: rcmgr.ResourceLimits{Memory: rcmgr.LimitVal64(maxMemory)}}.
		Build(rcmgr.DefaultLimits.Scale(maxMemory, maxFDs))
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits))
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{libp2p.Identity(sk), libp2p.ResourceManager(rm), libp2p.DisableRelay(), libp2p.NoListenAddrs}
	if transport == "tcp" || transport == "mixed" {
		opts = append(opts, libp2p.Transport(tcp.NewTCPTransport), libp2p.Security(noise.ID, noise.New),
			libp2p.Security(tls.ID, tls.New), libp2p.Muxer(yamux.ID, yamux.DefaultTransport))
		if listen {
			opts = append(opts, libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		}
	}
	if transport == "quic" || transport == "mixed" {
		opts = append(opts, libp2p.Transport(libp2pquic.NewTransport), libp2p.QUICReuse(quicConnManager(o)))
		if listen {
			opts = append(opts, libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"))
		}
	}
	if o.ranker == "tcpfirst" {
		opts = append(opts, libp2p.SwarmOpts(swarm.WithDialRanker(tcpFirstOnLAN)))
	}
	return libp2p.New(opts...)
}

// tcpFirstOnLAN is a dial ranker that dials TCP first to private and
// loopback addresses, where QUIC gains nothing (no NAT to traverse) and
// costs three to four times TCP's CPU per byte, and then the other private
// addresses after swarm.PrivateTCPDelay; public addresses keep go-libp2p's
// ranking (QUIC first).
func tcpFirstOnLAN(addrs []ma.Multiaddr) []network.AddrDelay {
	var lan, wan []ma.Multiaddr
	for _, a := range addrs {
		if manet.IsPrivateAddr(a) || manet.IsIPLoopback(a) {
			lan = append(lan, a)
		} else {
			wan = append(wan, a)
		}
	}
	out := swarm.DefaultDialRanker(wan)
	for _, a := range lan {
		delay := swarm.PrivateTCPDelay
		if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			delay = 0
		}
		out = append(out, network.AddrDelay{Addr: a, Delay: delay})
	}
	return out
}

// quicConnManager returns a constructor for go-libp2p's QUIC connection
// manager with the tuning o asks for.
func quicConnManager(o options) func(quic.StatelessResetKey, quic.TokenGeneratorKey) (*quicreuse.ConnManager, error) {
	return func(srk quic.StatelessResetKey, tk quic.TokenGeneratorKey) (*quicreuse.ConnManager, error) {
		var opts []quicreuse.Option
		if o.udpBuf > 0 {
			opts = append(opts, quicreuse.OverrideListenUDP(func(network string, laddr *net.UDPAddr) (net.PacketConn, error) {
				c, err := net.ListenUDP(network, laddr)
				if err != nil {
					return nil, err
				}
				c.SetReadBuffer(o.udpBuf)
				c.SetWriteBuffer(o.udpBuf)
				return c, nil
			}))
		}
		cm, err := quicreuse.NewConnManager(srk, tk, opts...)
		if err != nil {
			return nil, err
		}
		if o.windowMiB > 0 {
			// The one QUIC setting go-libp2p hands out: the config of
			// connections this host dials (a pointer to its own copy).
			c := cm.ClientConfig()
			c.MaxStreamReceiveWindow = uint64(o.windowMiB) << 20
			c.MaxConnectionReceiveWindow = uint64(o.windowMiB) << 20 * 3 / 2
		}
		return cm, nil
	}
}

// serve runs the serving end: it prints its address, serves until stdin
// closes, then stops its profile and prints its CPU seconds.
func serve(o options) error {
	h, err := newHost(o, o.serve, true)
	if err != nil {
		return err
	}
	defer h.Close()
	stop, err := startProfile(o, "server-"+o.serve)
	if err != nil {
		return err
	}
	data := make([]byte, chunk)
	rand.Read(data)
	h.SetStreamHandler(benchID, func(st network.Stream) {
		defer st.Close()
		var hdr [8]byte
		if _, err := io.ReadFull(st, hdr[:]); err != nil {
			st.Reset()
			return
		}
		for left := int64(binary.BigEndian.Uint64(hdr[:])); left > 0; left -= chunk {
			if _, err := st.Write(data[:min(left, chunk)]); err != nil {
				st.Reset()
				return
			}
		}
	})
	var addrs []string
	for _, a := range h.Addrs() {
		addrs = append(addrs, fmt.Sprintf("%s/p2p/%s", a, h.ID()))
	}
	fmt.Println(strings.Join(addrs, " "))
	io.Copy(io.Discard, os.Stdin)
	stop()
	fmt.Printf("cpu %.3f\n", cpuSeconds())
	return nil
}

// bench runs every setting and prints a line for each.
func bench(o options) error {
	fmt.Printf("%-5s %7s %8s %8s %9s %9s  (size %d MiB, window %d MiB, udpbuf %d, GSO off: %v)\n",
		"proto", "streams", "seconds", "MB/s", "cpu fetch", "cpu serve", o.sizeMiB, o.windowMiB, o.udpBuf, os.Getenv("QUIC_GO_DISABLE_GSO") != "")
	for _, tr := range o.transports {
		for _, n := range o.streams {
			var best *result
			for range o.repeat {
				r, err := runOnce(o, tr, n)
				if err != nil {
					return fmt.Errorf("%s, %d streams: %w", tr, n, err)
				}
				if best == nil || r.seconds < best.seconds {
					best = &r
				}
			}
			fmt.Printf("%-5s %7d %8.2f %8.0f %9.2f %9.2f  over %s\n", tr, n, best.seconds,
				float64(o.sizeMiB<<20)/best.seconds/1e6, best.fetchCPU, best.serveCPU, best.over)
		}
	}
	return nil
}

type result struct {
	seconds, fetchCPU, serveCPU float64
	// over is the transport the connection took.
	over string
}

// runOnce starts a server child, fetches from it over n streams and
// stops it.
func runOnce(o options, transport string, n int) (result, error) {
	args := []string{"-serve", transport, "-window", strconv.Itoa(o.windowMiB), "-udpbuf", strconv.Itoa(o.udpBuf), "-ranker", o.ranker}
	if o.profile != "" {
		args = append(args, "-profile", o.profile)
	}
	child := exec.Command(os.Args[0], args...)
	child.Stderr = os.Stderr
	in, err := child.StdinPipe()
	if err != nil {
		return result{}, err
	}
	out, err := child.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := child.Start(); err != nil {
		return result{}, err
	}
	defer child.Process.Kill()
	lines := bufio.NewScanner(out)
	addr, err := firstLine(lines)
	if err != nil {
		return result{}, fmt.Errorf("server did not start: %w", err)
	}
	r, err := fetch(o, transport, addr, n)
	in.Close()
	if err != nil {
		return r, err
	}
	last, _ := firstLine(lines)
	child.Wait()
	r.serveCPU, _ = strconv.ParseFloat(strings.TrimPrefix(last, "cpu "), 64)
	return r, nil
}

func firstLine(s *bufio.Scanner) (string, error) {
	done := make(chan bool, 1)
	go func() { done <- s.Scan() }()
	select {
	case ok := <-done:
		if !ok {
			return "", fmt.Errorf("no output: %v", s.Err())
		}
		return s.Text(), nil
	case <-time.After(readyTimeout):
		return "", errors.New("timed out")
	}
}

// fetch connects to addr and reads o.sizeMiB over n streams at once.
func fetch(o options, transport, addr string, n int) (result, error) {
	h, err := newHost(o, transport, false)
	if err != nil {
		return result{}, err
	}
	defer h.Close()
	var as []ma.Multiaddr
	for _, s := range strings.Fields(addr) {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return result{}, err
		}
		as = append(as, a)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(as...)
	if err != nil || len(infos) != 1 {
		return result{}, fmt.Errorf("server addresses %q: %v", addr, err)
	}
	ai := infos[0]
	ctx, cancel := context.WithTimeout(context.Background(), transferTimeout)
	defer cancel()
	if err := h.Connect(ctx, ai); err != nil {
		return result{}, err
	}

	stop, err := startProfile(o, "client-"+transport)
	if err != nil {
		return result{}, err
	}
	cpu0 := cpuSeconds()
	start := time.Now()
	per := o.sizeMiB << 20 / int64(n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	overs := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- get(ctx, h, ai.ID, per, overs)
		}()
	}
	wg.Wait()
	close(overs)
	var used []string
	for t := range overs {
		if !slices.Contains(used, t) {
			used = append(used, t)
		}
	}
	over := strings.Join(used, "+")
	if cs := h.Network().ConnsToPeer(ai.ID); len(cs) > 1 {
		over += fmt.Sprintf(" (%d connections)", len(cs))
	}
	r := result{seconds: time.Since(start).Seconds(), fetchCPU: cpuSeconds() - cpu0, over: over}
	stop()
	close(errs)
	for err := range errs {
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// transportOf names the transport of a connection's address.
func transportOf(a ma.Multiaddr) string {
	if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil {
		return "quic"
	}
	if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
		return "tcp"
	}
	return a.String()
}

// get reads size bytes on one stream, as the bulk client reads leaves, and
// sends the stream's transport to over.
func get(ctx context.Context, h host.Host, p peer.ID, size int64, over chan<- string) error {
	st, err := h.NewStream(ctx, p, benchID)
	if err != nil {
		return err
	}
	defer st.Close()
	over <- transportOf(st.Conn().RemoteMultiaddr())
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(size))
	if _, err := st.Write(hdr[:]); err != nil {
		return err
	}
	st.CloseWrite()
	r := bufio.NewReaderSize(st, readBuffer)
	buf := make([]byte, chunk)
	for left := size; left > 0; left -= chunk {
		if _, err := io.ReadFull(r, buf[:min(left, chunk)]); err != nil {
			return fmt.Errorf("after %d of %d bytes: %w", size-left, size, err)
		}
	}
	return nil
}

// startProfile starts a CPU profile into o.profile/name.pprof (none
// without -profile) and returns the function that stops it.
func startProfile(o options, name string) (func(), error) {
	if o.profile == "" {
		return func() {}, nil
	}
	f, err := os.Create(fmt.Sprintf("%s/%s.pprof", o.profile, name))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
