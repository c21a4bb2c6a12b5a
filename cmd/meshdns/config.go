package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"
)

// applyConfigFile sets every flag named in the YAML file at path that was
// not given on the command line. Keys are flag names (ttl, upstream,
// etcd-endpoints...); lists set repeatable flags. Unknown keys are errors,
// so a misspelt setting cannot silently do nothing.
func applyConfigFile(fs *pflag.FlagSet, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	settings, err := parseConfig(data)
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if err := setFlag(fs, key, settings[key]); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
	}
	return nil
}

// parseConfig reads a YAML mapping. Strict parsing rejects duplicate keys;
// numbers are kept as written, so 1000000 does not become 1e+06.
func parseConfig(data []byte) (map[string]any, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, err
	}
	js = bytes.TrimSpace(js)
	if len(js) == 0 || string(js) == "null" {
		return nil, nil // an empty file sets nothing
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var settings map[string]any
	if err := dec.Decode(&settings); err != nil {
		return nil, errors.New("want a mapping of flag names to values, e.g. \"ttl: 5s\"")
	}
	return settings, nil
}

func setFlag(fs *pflag.FlagSet, key string, v any) error {
	f := fs.Lookup(key)
	if f == nil || key == "config" || key == "help" {
		return fmt.Errorf("unknown key %q (keys are meshdns's flag names without the dashes, e.g. ttl, upstream, listen)", key)
	}
	if f.Changed {
		return nil // the command line wins
	}
	if list, ok := v.([]any); ok {
		sv, ok := f.Value.(pflag.SliceValue)
		if !ok {
			return fmt.Errorf("%s: takes one value, not a list", key)
		}
		items := make([]string, len(list))
		for i, item := range list {
			s, err := scalar(key, item)
			if err != nil {
				return err
			}
			items[i] = s
		}
		return wrapSetError(key, sv.Replace(items))
	}
	if v == nil {
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			return sv.Replace(nil) // "upstream:" with nothing: none
		}
		return fmt.Errorf("%s: no value given", key)
	}
	s, err := scalar(key, v)
	if err != nil {
		return err
	}
	// Value.Set, not FlagSet.Set: the flag must not count as given on the
	// command line, or a reload could not tell file from flag.
	return wrapSetError(key, f.Value.Set(s))
}

// scalar turns a YAML scalar into the text a flag parses.
func scalar(key string, v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	case bool:
		if v {
			return "true", nil
		}
		return "false", nil
	default:
		return "", fmt.Errorf("%s: want a plain value, not %s", key, describe(v))
	}
}

func describe(v any) string {
	switch v.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a nested list"
	}
	return fmt.Sprintf("%T", v)
}

func wrapSetError(key string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %s", key, strings.TrimPrefix(err.Error(), "invalid argument "))
}
