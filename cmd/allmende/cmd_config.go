package main

import (
	"strings"

	"github.com/allmende/allmende/configs"
	"github.com/allmende/allmende/node/localapi"
	"github.com/spf13/cobra"
)

func newConfigCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show configuration",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "defaults",
		Short: "Print every config key with its default and documentation",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(configs.Default())
			return err
		},
	}, &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration (defaults, profile, file, env, flags)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, home, err := loadConfig(g, nil)
			if err != nil {
				return err
			}
			if err := checkConfig(v, home); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), redactSecrets(v.AllSettings()))
		},
	})
	return cmd
}

// secretKeys are config keys whose values `config show` never prints.
var secretKeys = []string{"api.token", "mirror.upstream_token"}

// redactSecrets replaces the values of secretKeys in settings (viper's
// nested map) with "REDACTED".
func redactSecrets(settings map[string]any) map[string]any {
	for _, key := range secretKeys {
		parts := strings.Split(key, ".")
		m := settings
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				m = nil
				break
			}
			m = next
		}
		last := parts[len(parts)-1]
		if m != nil && m[last] != nil && m[last] != "" {
			m[last] = localapi.Secret("x").String()
		}
	}
	return settings
}
