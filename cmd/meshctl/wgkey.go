package main

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
)

// wgKeyPair is a WireGuard (Curve25519) key pair in the base64 form that
// wg(8) and wg-quick configuration files use.
type wgKeyPair struct {
	Private string
	Public  string
}

// newWGKeyPair generates a key pair as `wg genkey | wg pubkey` would: 32
// random bytes clamped for X25519 (RFC 7748 §5), and the public key is the
// X25519 product of the private key and the base point. The standard
// library's crypto/ecdh does the curve work, so meshctl needs no WireGuard
// dependency to hand out keys.
func newWGKeyPair(random io.Reader) (wgKeyPair, error) {
	var priv [32]byte
	if _, err := io.ReadFull(random, priv[:]); err != nil {
		return wgKeyPair{}, fmt.Errorf("generate a WireGuard key: %w", err)
	}
	// X25519 clamps the scalar anyway; clamping the stored key too makes it
	// byte-identical to what wg genkey prints, which some tools compare.
	priv[0] &= 248
	priv[31] = priv[31]&127 | 64
	return wgKeyPairFrom(priv)
}

// wgKeyPairFrom derives the public key of a private key.
func wgKeyPairFrom(priv [32]byte) (wgKeyPair, error) {
	k, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil {
		return wgKeyPair{}, fmt.Errorf("derive the WireGuard public key: %w", err)
	}
	return wgKeyPair{
		Private: base64.StdEncoding.EncodeToString(priv[:]),
		Public:  base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()),
	}, nil
}

// cryptoRand is the randomness of real key pairs; tests substitute theirs.
var cryptoRand io.Reader = rand.Reader
