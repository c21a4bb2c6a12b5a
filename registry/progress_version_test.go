package registry

import "testing"

func TestOrderedProgress(t *testing.T) {
	for v, want := range map[string]bool{
		"3.4.23": false, "3.4.24": false, "3.4.25": true, "3.4.37": true,
		"3.5.0": false, "3.5.7": false, "3.5.8": true, "3.5.21": true,
		"3.5.0-alpha.0": false, "3.3.27": false, "2.3.8": false,
		"3.6.0": true, "3.7.3": true, "4.0.0": true, "": true, "unknown": true,
	} {
		if got := orderedProgress(v); got != want {
			t.Errorf("orderedProgress(%q) = %v, want %v", v, got, want)
		}
	}
}
