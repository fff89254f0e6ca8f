// Command allmende shares AI models and datasets peer to peer. This package
// only parses flags and configuration and calls package node.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/allmende/allmende/node/api"
)

// Exit statuses (design.md): 0 success, 1 failure, 2 bad usage or input.
const (
	exitFailure  = 1
	exitBadInput = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	root.SetArgs(spreadArgs(root, os.Args[1:]))
	err := root.ExecuteContext(ctx)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "allmende:", err)
	os.Exit(exitCode(err))
}

// usageError marks errors in how a command was called.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, api.ErrBadInput) {
		return exitBadInput
	}
	return exitFailure
}
