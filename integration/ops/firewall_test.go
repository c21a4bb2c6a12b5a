package ops

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/internal/etcdtest"
)

// The nftables rules in docs/deploy.md parse (nft -c checks them against
// the kernel's nftables without loading them), so an operator who copies
// them gets a working firewall. The rules name the unit's user; a user that
// exists everywhere stands in for it here.
func TestDeployFirewallRulesParse(t *testing.T) {
	nft := etcdtest.RequireTool(t, "nft")
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	i := strings.Index(text, "table inet meshdns {")
	if i < 0 {
		t.Fatal("docs/deploy.md has no 'table inet meshdns' ruleset")
	}
	j := strings.Index(text[i:], "```")
	if j < 0 {
		t.Fatal("the ruleset's code block does not end")
	}
	rules := strings.ReplaceAll(text[i:i+j], "skuid != meshdns", "skuid != nobody")
	for _, want := range []string{"nfproto ipv4", "ip6 saddr != fdaa::/16", "skuid"} {
		if !strings.Contains(rules, want) {
			t.Errorf("the ruleset lost its %q rule", want)
		}
	}
	f := filepath.Join(t.TempDir(), "meshdns.nft")
	if err := os.WriteFile(f, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nft, "-c", "-f", f).CombinedOutput(); err != nil {
		t.Errorf("nft -c -f (rules of docs/deploy.md): %v\n%s\n%s", err, out, rules)
	}
}
