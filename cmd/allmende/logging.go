package main

import (
	"context"
	"log/slog"
	"os"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"go.uber.org/zap/zapcore"
)

// Library log levels.
const (
	// gologEnv is go-log's own level variable; when set, it rules the
	// libraries' levels instead of log.level.
	gologEnv = "GOLOG_LOG_LEVEL"
	// libraryFloor is the lowest level the libraries log at under
	// log.level: at debug, boxo's and the DHT's debug lines (one per
	// message) would bury allmende's own. GOLOG_LOG_LEVEL=debug gets them.
	libraryFloor = slog.LevelInfo
	// stdLogLevel is the level of lines written with the standard log
	// package (quic-go's warning about small UDP buffers, for one).
	stdLogLevel = slog.LevelWarn
)

// routeLibraryLogs sends the logs of go-libp2p (slog through gologshim),
// of boxo and kad-dht (zap through go-log) and of the standard log
// package (quic-go) to h, so one handler formats everything. The
// libraries log at level (log.level, but at least libraryFloor) unless
// GOLOG_LOG_LEVEL is set, which then rules; lines of the log package are
// warnings. It changes process-wide state: call it once, at start-up,
// before any node exists.
func routeLibraryLogs(h slog.Handler, level slog.Level) {
	golog.SetPrimaryCore(&slogCore{h: h})
	gologshim.SetDefaultHandler(golog.SlogHandler())
	if os.Getenv(gologEnv) == "" {
		// "*" also sets the level of loggers made later.
		_ = golog.SetLogLevel("*", max(level, libraryFloor).String()) // slog's level names parse
	}
	slog.SetDefault(slog.New(h))
	slog.SetLogLoggerLevel(stdLogLevel)
}

// slogCore is a zapcore.Core that forwards entries to a slog.Handler.
type slogCore struct {
	h     slog.Handler
	attrs []slog.Attr
}

var _ zapcore.Core = (*slogCore)(nil)

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), zapToSlog(l))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{h: c.h, attrs: append(append([]slog.Attr{}, c.attrs...), fieldsToAttrs(fields)...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, zapToSlog(e.Level), e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	r.AddAttrs(c.attrs...)
	r.AddAttrs(fieldsToAttrs(fields)...)
	return c.h.Handle(context.Background(), r)
}

func (c *slogCore) Sync() error { return nil }

func fieldsToAttrs(fields []zapcore.Field) []slog.Attr {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		attrs = append(attrs, slog.Any(k, v))
	}
	return attrs
}

func zapToSlog(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}
