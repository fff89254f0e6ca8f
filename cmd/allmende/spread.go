package main

import (
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Flags and commands can ask for values spread over several words, as the
// Hugging Face tools read them, which pflag does not do by itself:
//
//	--include '*.json' '*.safetensors'   a multi-value flag takes the words after it
//	--hf-cache DIR                       an optional-value flag takes the word after it
//
// A flag takes words only up to the next flag, and never those the command
// needs for its arguments: it leaves the last of them. So with fetch, which
// takes one argument, "fetch --include a b org/m" and "fetch org/m --include
// a b" both include a and b, "fetch --hf-cache DIR org/m" and "fetch org/m
// --hf-cache DIR" both write to DIR, and "fetch --hf-cache org/m" uses the
// default cache. spreadArgs rewrites such words into forms pflag parses
// (--include=a --include=b, --hf-cache=DIR) before cobra sees them.
const (
	// spreadAnnotation on a flag says how it takes the words after it:
	// spreadMulti or spreadOptional.
	spreadAnnotation = "allmende/spread"
	// spreadMulti: every word up to the next flag is one more value.
	spreadMulti = "multi"
	// spreadOptional: the flag has a value when given alone (NoOptDefVal)
	// and takes the one word after it as its value.
	spreadOptional = "optional"
	// argsAnnotation on a command is the number of arguments it takes; only
	// commands that set it have their words rewritten.
	argsAnnotation = "allmende/args"
)

// spreadFlag marks flag name of cmd as taking the words after it (mode is
// spreadMulti or spreadOptional) and records that cmd takes nargs
// arguments.
func spreadFlag(cmd *cobra.Command, name, mode string, nargs int) {
	if err := cmd.Flags().SetAnnotation(name, spreadAnnotation, []string{mode}); err != nil {
		panic(err) // the flag was defined just before
	}
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[argsAnnotation] = strconv.Itoa(nargs)
}

// spreadArgs rewrites the command line args (without the program name) for
// the command they run, if that command has flags marked by spreadFlag;
// otherwise it returns args as they are.
func spreadArgs(root *cobra.Command, args []string) []string {
	cmd, rest, err := root.Find(args)
	if err != nil || cmd.Annotations[argsAnnotation] == "" {
		return args
	}
	nargs, err := strconv.Atoi(cmd.Annotations[argsAnnotation])
	if err != nil {
		return args
	}
	flags := pflag.NewFlagSet(cmd.Name(), pflag.ContinueOnError)
	flags.AddFlagSet(cmd.Flags())
	flags.AddFlagSet(cmd.InheritedFlags())
	path := strings.Fields(cmd.CommandPath())[1:]
	return append(path, spreadWords(flags, nargs, rest)...)
}

// token is one word of a command line, or a marked flag with the words
// after it that it may take.
type token struct {
	word string
	// free: a word that is an argument unless a marked flag takes it.
	free bool
	// flag is set for a flag marked by spreadFlag given without "=";
	// cands are the words after it up to the next flag, of which it takes
	// the first take.
	flag  *pflag.Flag
	cands []string
	take  int
}

// spreadWords rewrites words (the command's flags and arguments) as the
// comment at the top describes; nargs is the number of arguments the
// command takes.
func spreadWords(flags *pflag.FlagSet, nargs int, words []string) []string {
	toks := tokenize(flags, words)
	// The arguments the command needs beyond the words no flag can take
	// are the last words flags could take.
	reserve := nargs
	for _, t := range toks {
		if t.free {
			reserve--
		}
	}
	for i := len(toks) - 1; i >= 0; i-- {
		t := &toks[i]
		r := min(max(reserve, 0), len(t.cands))
		reserve -= r
		t.take = len(t.cands) - r
		if t.flag != nil && t.flag.Annotations[spreadAnnotation][0] == spreadOptional {
			t.take = min(t.take, 1)
		}
	}
	var out []string
	for _, t := range toks {
		switch {
		case t.flag == nil:
			out = append(out, t.word)
		case t.take == 0:
			out = append(out, t.word)
		default:
			for _, v := range t.cands[:t.take] {
				out = append(out, "--"+t.flag.Name+"="+v)
			}
		}
		out = append(out, t.cands[t.take:]...) // arguments after all
	}
	return out
}

// tokenize splits words into flags and the values pflag gives them, marked
// flags with the words after them, and free words.
func tokenize(flags *pflag.FlagSet, words []string) []token {
	var toks []token
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "--": // arguments only from here on
			toks = append(toks, token{word: w})
			for _, a := range words[i+1:] {
				toks = append(toks, token{word: a, free: true})
			}
			return toks
		case strings.HasPrefix(w, "--"):
			name, _, hasValue := strings.Cut(w[2:], "=")
			f := flags.Lookup(name)
			if f != nil && !hasValue && len(f.Annotations[spreadAnnotation]) == 1 {
				t := token{word: w, flag: f}
				for i+1 < len(words) && !isFlagWord(words[i+1]) {
					i++
					t.cands = append(t.cands, words[i])
				}
				toks = append(toks, t)
				continue
			}
			toks = append(toks, token{word: w})
			if f != nil && !hasValue && f.NoOptDefVal == "" && i+1 < len(words) {
				i++
				toks = append(toks, token{word: words[i]})
			}
		case isFlagWord(w):
			toks = append(toks, token{word: w})
			if shortTakesNext(flags, w[1:]) && i+1 < len(words) {
				i++
				toks = append(toks, token{word: words[i]})
			}
		default:
			toks = append(toks, token{word: w, free: true})
		}
	}
	return toks
}

// isFlagWord reports whether pflag reads w as a flag ("-" alone is an
// argument).
func isFlagWord(w string) bool { return strings.HasPrefix(w, "-") && len(w) > 1 }

// shortTakesNext reports whether a group of shorthand flags (-o, -vo)
// takes the next word as the value of its last flag, as pflag parses it.
func shortTakesNext(flags *pflag.FlagSet, group string) bool {
	for i, c := range group {
		f := flags.ShorthandLookup(string(c))
		if f == nil {
			return false
		}
		if f.NoOptDefVal == "" {
			return i == len(group)-1 // -ofile carries its value
		}
	}
	return false
}
