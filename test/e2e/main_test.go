package e2e

import (
	"testing"

	"github.com/allmende/allmende/test/harness"
)

// TestMain removes the binaries the harness built once the tests are done.
func TestMain(m *testing.M) { harness.Main(m) }
