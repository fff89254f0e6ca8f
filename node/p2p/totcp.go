package p2p

import (
	"context"
	"net"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// moveToLANTCP moves the connection just dialled to ai.ID onto TCP when
// it runs over QUIC and the peer listens on plain TCP at the same LAN or
// loopback IP (it said so in identify, which Host.Connect waits for). On
// such a path QUIC buys nothing and costs three to four times TCP's CPU
// per byte (docs/swarm.md), so a fetch over it runs at half TCP's rate:
// tcpFirstOnLAN keeps ranked dials on TCP, and this covers a user who
// connects by a peer's QUIC address (allmende connect). It closes the
// QUIC connection and dials the peer's TCP addresses (the ranker still
// puts QUIC lanOtherDelay behind); if that fails it dials ai again.
func (n *Network) moveToLANTCP(ctx context.Context, ai peer.AddrInfo) {
	conns := n.Host.Network().ConnsToPeer(ai.ID)
	if len(conns) == 0 {
		return
	}
	for _, c := range conns {
		if !isQUIC(c.RemoteMultiaddr()) {
			return
		}
	}
	ip, err := manet.ToIP(conns[0].RemoteMultiaddr())
	if err != nil {
		return
	}
	var tcp []ma.Multiaddr
	for _, a := range n.Host.Peerstore().Addrs(ai.ID) {
		if isLANTCP(a) && sameIP(a, ip) {
			tcp = append(tcp, a)
		}
	}
	if len(tcp) == 0 {
		return
	}
	if err := n.Host.Network().ClosePeer(ai.ID); err != nil {
		n.log.Debug("close the QUIC connection", "peer", ai.ID, "err", err)
	}
	if err := n.Host.Connect(ctx, peer.AddrInfo{ID: ai.ID, Addrs: tcp}); err != nil {
		n.log.Info("could not move a QUIC connection to TCP; dialling as asked", "peer", ai.ID, "tcp", tcp, "err", err)
		if err := n.Host.Connect(ctx, ai); err != nil {
			n.log.Warn("reconnect after a failed move to TCP", "peer", ai.ID, "err", err)
		}
		return
	}
	n.log.Info("moved a LAN connection from QUIC to TCP", "peer", ai.ID, "tcp", tcp)
}

// isQUIC reports whether a is a QUIC address.
func isQUIC(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_QUIC_V1)
	return err == nil
}

// sameIP reports whether a's IP is ip.
func sameIP(a ma.Multiaddr, ip net.IP) bool {
	aip, err := manet.ToIP(a)
	return err == nil && aip.Equal(ip)
}
