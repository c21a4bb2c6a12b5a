package netns

import (
	"bufio"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// wgConfig is a wg-quick configuration as meshctl peer create prints it:
// section -> key -> value, for the [Interface] and the one [Peer].
type wgConfig map[string]map[string]string

// parseWGConfig reads the INI format of wg-quick(8): [Section] headers,
// "Key = Value" lines, '#' comments.
func parseWGConfig(text string) (wgConfig, error) {
	conf := wgConfig{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if conf[section] != nil {
				return nil, fmt.Errorf("section [%s] twice", section)
			}
			conf[section] = map[string]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("line %q: want Key = Value inside a section", line)
			}
			conf[section][strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	for _, want := range [][2]string{
		{"Interface", "PrivateKey"}, {"Interface", "Address"}, {"Interface", "DNS"},
		{"Peer", "PublicKey"}, {"Peer", "Endpoint"}, {"Peer", "AllowedIPs"}, {"Peer", "PersistentKeepalive"},
	} {
		if conf[want[0]][want[1]] == "" {
			return nil, fmt.Errorf("no %s in [%s]", want[1], want[0])
		}
	}
	return conf, nil
}

// keyHex turns a base64 WireGuard key into the hex form of the UAPI.
func keyHex(b64 string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != 32 {
		return "", fmt.Errorf("key %q: not 32 bytes of base64", b64)
	}
	return hex.EncodeToString(b), nil
}

// clientUAPI is what wg-quick would set on the device for this
// configuration (wg setconf), in wireguard-go's UAPI text form. Address,
// DNS and the routes are the host's part, done by the test.
func (c wgConfig) clientUAPI() (string, error) {
	priv, err := keyHex(c["Interface"]["PrivateKey"])
	if err != nil {
		return "", err
	}
	pub, err := keyHex(c["Peer"]["PublicKey"])
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\npublic_key=%s\nendpoint=%s\npersistent_keepalive_interval=%s\n",
		priv, pub, c["Peer"]["Endpoint"], c["Peer"]["PersistentKeepalive"])
	for _, p := range strings.Split(c["Peer"]["AllowedIPs"], ",") {
		fmt.Fprintf(&b, "allowed_ip=%s\n", strings.TrimSpace(p))
	}
	return b.String(), nil
}

// gatewayUAPI configures a region's gateway: its own key and port, and one
// peer admitted by the public key and address the registry holds for it.
func gatewayUAPI(privB64 string, port int, peerPubB64, peerIP string) (string, error) {
	priv, err := keyHex(privB64)
	if err != nil {
		return "", err
	}
	pub, err := keyHex(peerPubB64)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("private_key=%s\nlisten_port=%d\npublic_key=%s\nallowed_ip=%s/128\n", priv, port, pub, peerIP), nil
}

// newKeyPair makes a gateway's WireGuard key pair (wg genkey | wg pubkey).
func newKeyPair() (priv, pub string, err error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	return base64.StdEncoding.EncodeToString(k.Bytes()), base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()), nil
}
