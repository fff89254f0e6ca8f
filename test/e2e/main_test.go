// Package e2e is allmende's end-to-end tests: real daemons started as
// separate processes through test/harness, on 127.0.0.1 or in network
// namespaces the tests build (test/netns), moving real bytes between them
// and checking what the CLI, the local API and the mirror answer.
package e2e

import (
	"testing"

	"github.com/allmende/allmende/test/harness"
)

// TestMain removes the binaries the harness built once the tests are done.
func TestMain(m *testing.M) { harness.Main(m) }
