// Command gosha256 hashes a file with Go's crypto/sha256 and prints the
// digest, as sha256sum does. bench/run.sh times it as the reference rate
// for importing a file in place: no import can hash faster than this.
package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gosha256 FILE")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "gosha256:", err)
		os.Exit(1)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		fmt.Fprintln(os.Stderr, "gosha256:", err)
		os.Exit(1)
	}
	fmt.Printf("%x  %s\n", h.Sum(nil), os.Args[1])
}
