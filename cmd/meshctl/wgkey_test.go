package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"testing"
)

// TestWGKeyPairFromRFC7748 checks the public key derivation against the
// X25519 test vector of RFC 7748 §6.1 (Alice's key pair).
func TestWGKeyPairFromRFC7748(t *testing.T) {
	t.Parallel()
	priv, _ := hex.DecodeString("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
	pub, _ := hex.DecodeString("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
	kp, err := wgKeyPairFrom([32]byte(priv))
	if err != nil {
		t.Fatal(err)
	}
	if want := base64.StdEncoding.EncodeToString(pub); kp.Public != want {
		t.Fatalf("public key %s, want %s", kp.Public, want)
	}
	if want := base64.StdEncoding.EncodeToString(priv); kp.Private != want {
		t.Fatalf("private key %s, want %s", kp.Private, want)
	}
}

// TestNewWGKeyPair checks generated keys: clamped as wg genkey clamps,
// public key derived from the private one, different every time.
func TestNewWGKeyPair(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		kp, err := newWGKeyPair(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv, err := base64.StdEncoding.DecodeString(kp.Private)
		if err != nil || len(priv) != 32 {
			t.Fatalf("private key %q: %v, %d bytes", kp.Private, err, len(priv))
		}
		if priv[0]&7 != 0 || priv[31]&128 != 0 || priv[31]&64 == 0 {
			t.Fatalf("private key %x is not clamped", priv)
		}
		again, err := wgKeyPairFrom([32]byte(priv))
		if err != nil || again != kp {
			t.Fatalf("derived %v (%v), generated %v", again, err, kp)
		}
		if seen[kp.Private] {
			t.Fatal("the same key twice")
		}
		seen[kp.Private] = true
	}
	if _, err := newWGKeyPair(bytes.NewReader(make([]byte, 31))); err == nil {
		t.Fatal("no error when randomness runs out")
	}
}
