// Command refgofer serves a host directory over LISAFS with gVisor's stock backend
// (gvisor.dev/gvisor/runsc/fsgofer), the side-by-side reference for our gofer:
//
//	refgofer -root DIR -socket PATH [-readonly] [-chroot] [-host-uds all] [-donate-mount-fd]
//
// It listens on a Unix stream socket and mounts DIR on every accepted connection.
// The wiring follows runsc/cmd/gofer.go (Gofer.serve): umask 0, OpenProcSelfFD,
// one lisafs.NewServer() shared by all connections, and per connection
//
//	conn := server.CreateConnection(sock, mountPath, fsgofer.ConnectionOpts(ro),
//	                                fsgofer.NewConnectionImpl(&fsgofer.Config{...}))
//	server.StartConnection(conn)
//
// No root is needed for plain serving. runsc chroots into the container root and
// serves "/"; without -chroot we instead serve DIR by its absolute host path, like
// runsc's TestOnlyAllowRunAsCurrentUserWithoutChroot mode. fsgofer opens the mount
// with open(mountPath) from the process root, and some handlers (SetStat on O_PATH
// FDs, LinkAt, BindAt, Connect) re-open a node's parent with
// openat2(AT_FDCWD, dir(path), RESOLVE_NO_SYMLINKS), so the served path must be
// absolute and symlink-free: we resolve DIR with EvalSymlinks. One visible
// difference remains: under runsc the mount root's path is "/" and fsgofer refuses
// to take its parent (EINVAL), while here the root's parent is DIR's real parent.
// -chroot (needs CAP_SYS_CHROOT) removes that difference by chrooting into DIR
// after binding the socket and serving "/", exactly as runsc does.
//
// Host UDS/FIFO access and mount-FD donation default to off, like fsgofer's test
// config; -donate-mount-fd mirrors runsc's --directfs.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/lisafs"
	"gvisor.dev/gvisor/pkg/log"
	"gvisor.dev/gvisor/pkg/unet"
	"gvisor.dev/gvisor/runsc/fsgofer"
)

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "refgofer: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	var cfg fsgofer.Config
	root := flag.String("root", "", "host directory to serve")
	sockPath := flag.String("socket", "", "Unix stream socket to listen on")
	readonly := flag.Bool("readonly", false, "serve the mount read-only")
	chroot := flag.Bool("chroot", false, "chroot into -root and serve / (needs CAP_SYS_CHROOT), as runsc does")
	debug := flag.Bool("debug", false, "log every RPC (gVisor debug logging) to stderr")
	flag.Var(&cfg.HostUDS, "host-uds", "host UDS access: none|open|create|all")
	flag.Var(&cfg.HostFifo, "host-fifo", "host FIFO access: none|open")
	flag.Var(&cfg.CharDevicePolicy, "character-device-policy", "emulated-only|prefer-emulated|passthrough")
	flag.BoolVar(&cfg.DonateMountPointFD, "donate-mount-fd", false, "donate a host FD on Mount (runsc --directfs)")
	flag.Parse()
	if *root == "" || *sockPath == "" {
		fatalf("need -root DIR and -socket PATH")
	}
	if *debug {
		log.SetLevel(log.Debug)
	}

	mountPath, err := filepath.Abs(*root)
	if err == nil {
		mountPath, err = filepath.EvalSymlinks(mountPath)
	}
	if err != nil {
		fatalf("resolving -root: %v", err)
	}

	// Preserve modes exactly as the client sends them (the sentry applied its umask).
	unix.Umask(0)
	if err := fsgofer.OpenProcSelfFD("/proc/self/fd"); err != nil {
		fatalf("%v", err)
	}

	_ = os.Remove(*sockPath) // a stale socket from an earlier run would fail bind
	ln, err := unet.BindAndListen(*sockPath, false)
	if err != nil {
		fatalf("listen on %s: %v", *sockPath, err)
	}
	cleanup := func() { _ = os.Remove(*sockPath) }
	if *chroot {
		if err := unix.Chroot(mountPath); err != nil {
			fatalf("chroot %s: %v", mountPath, err)
		}
		if err := unix.Chdir("/"); err != nil {
			fatalf("chdir /: %v", err)
		}
		mountPath = "/"
		cleanup = func() {} // the socket path is outside our root now
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, unix.SIGINT, unix.SIGTERM)
		<-sig
		cleanup()
		os.Exit(0)
	}()

	// IDs as runsc fills them (after its chroot); ConnectWithCreds switches to the
	// client's euid/egid and back relative to these.
	cfg.RUID, cfg.EUID, cfg.RGID, cfg.EGID = unix.Getuid(), unix.Geteuid(), unix.Getgid(), unix.Getegid()

	server := lisafs.NewServer()
	fmt.Fprintf(os.Stderr, "refgofer: serving %s on %s (readonly=%t)\n", mountPath, *sockPath, *readonly)
	for {
		sock, err := ln.Accept()
		if err != nil {
			fatalf("accept: %v", err)
		}
		conn, err := server.CreateConnection(sock, mountPath, fsgofer.ConnectionOpts(*readonly), fsgofer.NewConnectionImpl(&cfg))
		if err != nil {
			// A bad connection must not take the reference server down.
			fmt.Fprintf(os.Stderr, "refgofer: CreateConnection: %v\n", err)
			sock.Close()
			continue
		}
		server.StartConnection(conn)
	}
}
