package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// applyConfigFile sets every flag named in the YAML file at path that was
// not given on the command line. Keys are flag names (ttl, upstream,
// etcd-endpoints...); lists set repeatable flags. Unknown keys are errors,
// so a misspelt setting cannot silently do nothing. Each value reaches the
// flag's own parser as written in the file: "memory-limit: off" is the
// text off, as --memory-limit off would be, not YAML's boolean false.
func applyConfigFile(fs *pflag.FlagSet, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	settings, err := parseConfig(data)
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	for _, kv := range settings {
		if err := setFlag(fs, kv.key, kv.value); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
	}
	return nil
}

// configValue is one key of the file and its value.
type configValue struct {
	key   string
	value *yaml.Node
}

// parseConfig reads a YAML mapping, in key order. A key given twice is an
// error.
func parseConfig(data []byte) ([]configValue, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil // an empty file sets nothing
	}
	root := resolve(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, errors.New("want a mapping of flag names to values, e.g. \"ttl: 5s\"")
	}
	var out []configValue
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := resolve(root.Content[i])
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: want a flag name as the key, e.g. \"ttl: 5s\"", k.Line)
		}
		if line, dup := seen[k.Value]; dup {
			return nil, fmt.Errorf("line %d: key %q already set on line %d", k.Line, k.Value, line)
		}
		seen[k.Value] = k.Line
		out = append(out, configValue{key: k.Value, value: resolve(root.Content[i+1])})
	}
	slices.SortFunc(out, func(a, b configValue) int { return strings.Compare(a.key, b.key) })
	return out, nil
}

// resolve follows an alias (*name) to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// setFlag sets the flag key from v: a value of the file (*yaml.Node) or
// the text of one (string).
func setFlag(fs *pflag.FlagSet, key string, value any) error {
	v, ok := value.(*yaml.Node)
	if !ok {
		v = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: fmt.Sprint(value), Style: yaml.DoubleQuotedStyle}
	}
	f := fs.Lookup(key)
	if f == nil || key == "config" || key == "help" {
		return fmt.Errorf("unknown key %q (keys are meshdns's flag names without the dashes, e.g. ttl, upstream, listen)", key)
	}
	if f.Changed {
		return nil // the command line wins
	}
	if v.Kind == yaml.SequenceNode {
		sv, ok := f.Value.(pflag.SliceValue)
		if !ok {
			return fmt.Errorf("%s: takes one value, not a list", key)
		}
		items := make([]string, len(v.Content))
		for i, item := range v.Content {
			s, err := scalar(key, f, resolve(item))
			if err != nil {
				return err
			}
			items[i] = s
		}
		return wrapSetError(key, sv.Replace(items))
	}
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			return sv.Replace(nil) // "upstream:" with nothing: none
		}
		return fmt.Errorf("%s: no value given", key)
	}
	s, err := scalar(key, f, v)
	if err != nil {
		return err
	}
	// Value.Set, not FlagSet.Set: the flag must not count as given on the
	// command line, or a reload could not tell file from flag.
	return wrapSetError(key, f.Value.Set(s))
}

// yaml11Bools are YAML 1.1's words for true and false, which the
// configuration reader of earlier versions took as booleans: a boolean
// flag still takes them.
var yaml11Bools = map[string]string{
	"y": "true", "yes": "true", "on": "true",
	"n": "false", "no": "false", "off": "false",
}

// scalar is the text of a YAML scalar as written in the file, for the
// flag's own parser.
func scalar(key string, f *pflag.Flag, n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		if b, ok := yaml11Bools[strings.ToLower(n.Value)]; ok && f.Value.Type() == "bool" && n.Style == 0 {
			return b, nil
		}
		return n.Value, nil
	case yaml.MappingNode:
		return "", fmt.Errorf("%s: want a plain value, not a mapping", key)
	case yaml.SequenceNode:
		return "", fmt.Errorf("%s: want a plain value, not a nested list", key)
	}
	return "", fmt.Errorf("%s: want a plain value", key)
}

func wrapSetError(key string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %s", key, strings.TrimPrefix(err.Error(), "invalid argument "))
}
