"""runsc's global flags: the ones it parses before its subcommand.

`gofer [runsc global flags] gofer ...` must find the subcommand as runsc
does, and Go's `flag` package gives a boolean flag a value only as
``-name=value``, while any other flag takes ``-name value`` too: so which of
runsc's flags are boolean decides where `gofer` is. These are runsc's
(gvisor.dev/gvisor at the version go.mod pins: runsc/config/flags.go and
flags_graveyard.go, runsc/cli/cli.go, help, h and version), as
tests/sandbox/runsc/main.go registers them; tests/sandbox/test_runsc_flags.py
checks them against that module's own registration.

runsc itself always passes ``--name=value`` to its gofer, so a flag that a
later runsc adds is still read right (see gofer.cli).
"""

BOOLEAN = frozenset("""
    allow-connected-on-save allow-flag-override allow-live-tcp-migration
    allow-packet-socket-write allow-rootfs-tar-annotation allow-suid alsologtostderr
    app-huge-pages buffer-pooling cgroupfs cpu-num-from-quota debug debug-to-user-log
    directfs enable-core-tags EXPERIMENTAL-xdp-need-wakeup fsgofer-host-uds fuse gso
    gvisor-gro gvisor-marker-file h help ignore-cgroups iouring kvm-use-cpu-nums lisafs
    log-packets mount-cgroup-v2 net-disconnect-ok net-raw nvproxy
    nvproxy-allow-unsupported-driver nvproxy-docker oci-seccomp overlay
    pause-external-networking profile rdmaproxy reproduce-nat reproduce-nftables
    rootless rx-checksum-offload save-restore-netstack software-gso strace strace-event
    systemd-cgroup systrap-disable-fast-path systrap-disable-syscall-patching
    TESTONLY-afs-syscall-panic TESTONLY-autosave-resume TESTONLY-nftables
    TESTONLY-unsafe-nonroot tpuproxy tx-checksum-offload version vfs2
""".split())

VALUE = frozenset("""
    character-device-policy control-rpc-stop-timeout coverage-fd coverage-report dcache
    debug-command debug-log debug-log-fd debug-log-format EXPERIMENTAL-xdp fdlimit
    file-access file-access-mounts final-metrics-log gofer-network-namespace host-fifo
    host-settings host-uds in-sandbox-cgroup log log-fd log-format metric-server network
    network-processors-per-channel num-network-channels
    nvproxy-allowed-driver-capabilities nvproxy-driver-version overlay2 override-procs
    panic-log panic-log-fd panic-signal pcap-log platform platform_device_path
    pod-init-config profile-block profile-cpu profile-gc-interval profile-heap
    profile-mutex profiling-metrics profiling-metrics-log profiling-metrics-rate-us
    qdisc qdisc-tbf-burst qdisc-tbf-rate ref-leak-mode restore-spec-validation root
    shared-root sidecar-release-enforcement-policy sidecar-usage-policy strace-log-size
    strace-syscalls TESTONLY-autosave-image-path TESTONLY-test-name-env trace traceback
    watchdog-action
""".split())
