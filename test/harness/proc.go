package harness

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// PID is the daemon's process ID, or 0 if none runs.
func (n *Node) PID() int {
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// RSS is the daemon's resident set size in bytes, read from /proc.
func (n *Node) RSS() (uint64, error) {
	pid := n.PID()
	if pid == 0 {
		return 0, fmt.Errorf("no daemon running")
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
