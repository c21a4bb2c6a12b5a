package netns

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// A WireGuard endpoint needs its own process: its TUN device and its UDP
// socket must live in a namespace of the test, and a socket belongs to the
// namespace of the thread that made it. So the test binary runs itself
// again inside the namespace (`ip netns exec NS <test binary>`) with these
// variables set, and TestMain hands over to runHelperIfAsked.
const (
	helperEnv     = "MESHDNS_NETNS_WG_UAPI" // file with the device's UAPI configuration
	helperTUNEnv  = "MESHDNS_NETNS_WG_TUN"  // name of the TUN device to create
	helperReady   = "wireguard ready"       // printed once the device is up
	wireguardMTU  = 1420                    // wg-quick's default
	helperLogSize = 40
)

// runHelperIfAsked runs a userspace WireGuard device (wireguard-go on a TUN
// device) configured with the UAPI text in $MESHDNS_NETNS_WG_UAPI, until
// SIGTERM, and exits; without that variable it returns at once.
func runHelperIfAsked() {
	path := os.Getenv(helperEnv)
	if path == "" {
		return
	}
	if err := runWireGuard(path, os.Getenv(helperTUNEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "wireguard helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runWireGuard(uapiPath, tunName string) error {
	uapi, err := os.ReadFile(uapiPath)
	if err != nil {
		return err
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	dev, err := tun.CreateTUN(tunName, wireguardMTU)
	if err != nil {
		return fmt.Errorf("create TUN %s: %w", tunName, err)
	}
	wg := device.NewDevice(dev, conn.NewDefaultBind(), device.NewLogger(device.LogLevelError, "wireguard: "))
	defer wg.Close()
	if err := wg.IpcSet(string(uapi)); err != nil {
		return fmt.Errorf("configure: %w", err)
	}
	if err := wg.Up(); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	fmt.Println(helperReady)
	<-stop
	return nil
}
