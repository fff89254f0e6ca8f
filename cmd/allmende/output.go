package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/allmende/allmende/node/api"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// progressBar returns a progress callback that draws a bar with bytes, rate
// and ETA on stderr when it is a terminal, and does nothing otherwise.
func progressBar(description string) (api.ProgressFunc, func()) {
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil, func() {}
	}
	var bar *progressbar.ProgressBar
	update := func(p api.Progress) {
		if bar == nil {
			bar = progressbar.NewOptions64(int64(p.Total),
				progressbar.OptionSetDescription(description),
				progressbar.OptionSetWriter(os.Stderr),
				progressbar.OptionShowBytes(true),
				progressbar.OptionShowTotalBytes(true),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionShowElapsedTimeOnFinish(),
				progressbar.OptionThrottle(100_000_000),
				progressbar.OptionFullWidth(),
			)
		}
		bar.Set64(int64(p.Done))
	}
	done := func() {
		if bar != nil {
			bar.Finish()
			fmt.Fprintln(os.Stderr)
		}
	}
	return update, done
}
