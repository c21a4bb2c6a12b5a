// Command meshdns is the DNS server for the .internal zone of a private IPv6
// mesh network. See the README at the top of the repository.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
