package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagName is the flag that sets a config key: the key in kebab-case
// (fetch.timeout → --fetch-timeout). loadConfig binds every flag so named
// to its key.
func flagName(key string) string {
	return strings.NewReplacer(".", "-", "_", "-").Replace(key)
}

// bindConfigFlags binds each of keys that has a flag in flags.
func bindConfigFlags(keys []string, flags *pflag.FlagSet, bind func(key string, f *pflag.Flag) error) error {
	for _, key := range keys {
		if f := flags.Lookup(flagName(key)); f != nil {
			if err := bind(key, f); err != nil {
				return fmt.Errorf("flag --%s: %w", f.Name, err)
			}
		}
	}
	return nil
}

// deprecatedAlias adds --old as a hidden, deprecated spelling of the flag
// name, for scripts written before flags were kebab-case: setting it sets
// name (so name counts as given), and pflag warns on stderr.
func deprecatedAlias(flags *pflag.FlagSet, old, name string) {
	target := flags.Lookup(name)
	flags.Var(aliasValue{Value: target.Value, flags: flags, name: name}, old, target.Usage)
	if err := flags.MarkDeprecated(old, "use --"+name); err != nil {
		panic(err) // old was added just above
	}
}

// aliasValue forwards Set to the flag it stands for.
type aliasValue struct {
	pflag.Value
	flags *pflag.FlagSet
	name  string
}

func (a aliasValue) Set(s string) error { return a.flags.Set(a.name, s) }

// rejectUnknownSubcommands makes every command that only groups others
// (the root, config, trust, completion) fail with a usage error, exit
// status 2, when called with a word that is not one of its subcommands;
// cobra's own error for it would exit 1. Called alone they print help.
func rejectUnknownSubcommands(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		rejectUnknownSubcommands(c)
	}
	if !cmd.HasSubCommands() || cmd.Runnable() {
		return
	}
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if len(a) == 0 {
			return cmd.Help()
		}
		return usageError{fmt.Errorf("unknown command %q for %q; run '%s --help' for the commands", a[0], cmd.CommandPath(), cmd.CommandPath())}
	}
}
