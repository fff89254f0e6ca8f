//go:build !race

package swarmsim

// raceEnabled: the race detector slows the simulation about tenfold.
const raceEnabled = false
