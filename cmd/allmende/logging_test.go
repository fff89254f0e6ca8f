package main

import (
	"bytes"
	"log"
	"log/slog"
	"strings"
	"testing"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
)

// TestLibraryLogsFollowLogLevel: go-log (boxo, the DHT) and gologshim
// (go-libp2p) loggers log at log.level, floored at info, through the
// daemon's handler; lines of the standard log package (quic-go) arrive
// there as warnings. Not parallel: it changes process-wide logging.
func TestLibraryLogsFollowLogLevel(t *testing.T) {
	t.Setenv(gologEnv, "")
	tests := []struct {
		level slog.Level
		want  []string // of lib-debug, lib-info, lib-warn, shim-info, shim-warn
	}{
		{slog.LevelDebug, []string{"lib-info", "lib-warn", "shim-info", "shim-warn"}},
		{slog.LevelInfo, []string{"lib-info", "lib-warn", "shim-info", "shim-warn"}},
		{slog.LevelWarn, []string{"lib-warn", "shim-warn"}},
		{slog.LevelError, nil},
	}
	for i, tt := range tests {
		t.Run(tt.level.String(), func(t *testing.T) {
			var buf bytes.Buffer
			newLogger(&buf, logSettings{level: tt.level, format: logText}, true)
			// Loggers made after the level is set, as most are.
			lib := golog.Logger("allmende-test-" + tt.level.String())
			shim := gologshim.Logger("allmende-shim-" + tt.level.String())
			lib.Debug("lib-debug")
			lib.Info("lib-info")
			lib.Warn("lib-warn")
			shim.Info("shim-info")
			shim.Warn("shim-warn")
			log.Print("std-line ", i)
			out := buf.String()
			for _, m := range []string{"lib-debug", "lib-info", "lib-warn", "shim-info", "shim-warn"} {
				want := strings.Contains(strings.Join(tt.want, " "), m)
				if got := strings.Contains(out, "msg="+m); got != want {
					t.Errorf("%s logged: %v, want %v\n%s", m, got, want, out)
				}
			}
			if tt.level <= stdLogLevel && !strings.Contains(out, "level=WARN msg=\"std-line ") {
				t.Errorf("the log package's line is not a warning through the handler:\n%s", out)
			}
		})
	}
}

// TestGologEnvRulesLibraryLevels: with GOLOG_LOG_LEVEL set, log.level
// leaves the libraries' levels alone.
func TestGologEnvRulesLibraryLevels(t *testing.T) {
	t.Setenv(gologEnv, "error")
	if err := golog.SetLogLevel("*", "error"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	newLogger(&buf, logSettings{level: slog.LevelDebug, format: logText}, true)
	golog.Logger("allmende-test-env").Warn("lib-warn")
	if strings.Contains(buf.String(), "lib-warn") {
		t.Errorf("a library warning passed GOLOG_LOG_LEVEL=error:\n%s", buf.String())
	}
}
