"""The gofer's seccomp filter: an allowlist of syscalls, per architecture.

The gofer is the trust boundary between a sandbox and the host, so once it
serves, it runs under a seccomp-bpf filter, like gVisor's own gofer
(``runsc/fsgofer/filter``). The allowlist is what the server needs *while
serving* -- CPython 3.11 threads and memory, the native core (futex, memfd,
mmap, SEQPACKET fdchannel), the stock host backend and ``gofer serve`` /
`gofer.service.Service` -- measured with strace (see docs/seccomp.md).
Everything before the filter goes on (imports, the listening socket, the
extensions' start-up) is not covered and need not be.

    from gofer import seccomp
    seccomp.install()                                   # kill on violation
    seccomp.install(extra_rules=["uname"], log=True)    # log and ENOSYS instead

Rules are syscall names, or ``(name, [pyseccomp.Arg, ...])`` whose argument
comparisons must all hold; several rules for one name are alternatives (OR).
Names are resolved per architecture by libseccomp; a name the architecture
does not have (``unlink`` on arm64) is skipped, a name no architecture has
is an error. Extension rules (`Extension.seccomp_rules`) are merged the way
gVisor merges them: they can only widen the allowlist. As in gVisor, no
rule can allow a new executable mapping (mmap/mprotect with PROT_EXEC).

Default action: SECCOMP_RET_KILL_PROCESS (SIGSYS, the whole gofer dies), or
with ``log=True`` SECCOMP_RET_TRAP with a SIGSYS handler (native/sigsys.c)
that writes ``gofer: seccomp: syscall NNN not allowed (pid P): name`` to
stderr and makes the syscall fail with ENOSYS.

pyseccomp (ctypes over the system's libseccomp.so.2) is imported on first
use, so ``import gofer.seccomp`` works where libseccomp is missing.
"""
import errno
import os
import sys

from gofer._log import log as _log

# ----------------------------------------------------------------- constants
# Linux UAPI values. Every one below is the same on x86_64 and arm64 (both
# take them from asm-generic), so a filter built here for either is right.
# Syscall *numbers* are never written down: libseccomp resolves names.

PROT_EXEC = 0x4

MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_DROPPABLE = 0x08
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_NORESERVE = 0x4000
MAP_STACK = 0x20000

FUTEX_WAIT = 0
FUTEX_WAKE = 1
FUTEX_WAIT_BITSET = 9
FUTEX_WAKE_BITSET = 10
FUTEX_PRIVATE_FLAG = 128
FUTEX_CLOCK_REALTIME = 256
# The kernel's FUTEX_CMD_MASK: the op without the PRIVATE and CLOCK_REALTIME
# flags (low 32 bits: the op is an int).
FUTEX_CMD_MASK = ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME) & 0xFFFFFFFF

F_GETFD, F_SETFD, F_GETFL, F_SETFL = 1, 2, 3, 4
F_DUPFD_CLOEXEC = 1030
F_ADD_SEALS = 1033

AF_UNIX = 1
SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET = 1, 2, 5
SOCK_NONBLOCK = 0o4000
SOCK_CLOEXEC = 0o2000000
SOL_SOCKET = 1
SO_TYPE, SO_SNDBUF, SO_PEERCRED, SO_PROTOCOL, SO_DOMAIN = 3, 7, 17, 38, 39
SHUT_RDWR = 2

MSG_TRUNC = 0x20
MSG_DONTWAIT = 0x40
MSG_NOSIGNAL = 0x4000
MSG_CMSG_CLOEXEC = 0x40000000

MFD_CLOEXEC = 0x1
MFD_ALLOW_SEALING = 0x2

AT_SYMLINK_FOLLOW = 0x400

TCGETS = 0x5401
FIONBIO = 0x5421
FIONCLEX = 0x5450
FIOCLEX = 0x5451

PR_SET_VMA = 0x53564D41
PR_SET_VMA_ANON_NAME = 0

# What glibc's pthread_create passes to clone (and clone3): a thread, never a
# process. The exit signal (low byte) is 0.
CLONE_THREAD_FLAGS = (0x100 | 0x200 | 0x400 | 0x800     # VM FS FILES SIGHAND
                      | 0x10000 | 0x40000 | 0x80000      # THREAD SYSVSEM SETTLS
                      | 0x100000 | 0x200000)             # PARENT_SETTID CHILD_CLEARTID

# Bit 31 of an int argument: clear when the int (a file descriptor) is >= 0.
# Masked, so whatever the upper half of the 64-bit register holds is ignored.
INT_SIGN = 0x80000000

# Syscalls that may mint executable memory: every rule for them carries
# "PROT_EXEC clear" (gVisor's DenyNewExecMappings), extension rules included.
EXEC_GUARDED = {"mmap": 2, "mprotect": 2, "pkey_mprotect": 2}

# Syscalls answered with an errno instead of the default action, unless an
# extension allows them. clone3 takes its flags in memory, out of a filter's
# reach; glibc (2.34+) falls back to clone on ENOSYS, whose flags we check.
ERRNO_RULES = {"clone3": errno.ENOSYS}

_MAX_ARG = 0xFFFFFFFFFFFFFFFF


# The libraries pyseccomp loads, by their sonames (the same on x86_64 and arm64).
_SONAMES = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}


class _Annotation:
    """Any of typing's names in pyseccomp's annotations, which nothing reads."""

    def __getitem__(self, _):
        return self


def _import_stubs():
    """Modules pyseccomp imports for what it does not need here: absent
    ones are stood in for while it is imported (see _sc)."""
    util = type(sys)("ctypes.util")
    util.find_library = _SONAMES.get
    typing = type(sys)("typing")
    typing.Any = typing.Collection = typing.Iterable = typing.Union = _Annotation()
    typing.cast = lambda _type, value: value
    typing.overload = lambda f: f
    return {"ctypes.util": util, "typing": typing}


def _sc():
    """pyseccomp, imported on first use.

    pyseccomp finds its two libraries with ctypes.util.find_library, which
    imports subprocess, tempfile and shutil and runs `ldconfig -p` twice:
    10-15 ms of every sandbox's start; it imports typing (with re and enum,
    3-4 ms) for its annotations. While it is imported it is given a
    find_library that knows the sonames, which the dynamic loader resolves
    itself, and a typing of the few names it uses; both are taken away
    afterwards. A pyseccomp that wants more is imported as it is."""
    try:
        if "pyseccomp" in sys.modules:
            return sys.modules["pyseccomp"]
        import ctypes
        stubs = {k: v for k, v in _import_stubs().items() if k not in sys.modules}
        sys.modules.update(stubs)
        had_util = hasattr(ctypes, "util")
        if "ctypes.util" in stubs:
            ctypes.util = stubs["ctypes.util"]
        try:
            import pyseccomp
        except (ImportError, AttributeError, TypeError):
            pyseccomp = None                # a newer pyseccomp: the real modules
        finally:
            for k in stubs:
                del sys.modules[k]
            if "ctypes.util" in stubs and not had_util:
                del ctypes.util
        if pyseccomp is None:
            import pyseccomp
    except (ImportError, RuntimeError, OSError) as e:    # no libseccomp.so.2
        raise RuntimeError("seccomp needs pyseccomp and libseccomp.so.2: %s" % e) from None
    return pyseccomp


# ----------------------------------------------------------------- allowlist
# Each entry: (name, [alternative, ...]) where an alternative is a tuple of
# argument conditions (arg index, op, value[, value2]) that must all hold; no
# alternatives means any arguments. The comment says who needs it.

def _stock():
    EQ, MASKED_EQ = "EQ", "MASKED_EQ"
    not_exec = (2, MASKED_EQ, PROT_EXEC, 0)

    def fd_ok(i):                       # argument i is a file descriptor >= 0
        return (i, MASKED_EQ, INT_SIGN, 0)

    return [
        # --- threads: Service runs one thread per connection and one per
        # flipcall channel (gofer._server.Thread -> glibc pthread_create).
        ("clone", [((0, EQ, CLONE_THREAD_FLAGS),)]),   # pthread_create, after clone3 -> ENOSYS
        ("set_robust_list", []),        # glibc, at the start of each thread
        ("rseq", []),                   # glibc >= 2.35 registers rseq per thread
        ("exit", []),                   # a thread ends (connection or channel closed)
        ("exit_group", []),             # the gofer exits
        ("gettid", []),                 # glibc; threading's native_id (a library user's threads)
        ("getpid", []),                 # logging records, glibc raise(), the SIGSYS logger
        ("tgkill", [((0, EQ, os.getpid()),)]),   # glibc raise()/abort(): our own threads only
        ("rt_sigprocmask", []),         # pthread_create blocks signals around clone
        ("rt_sigaction", []),           # glibc's first pthread_create; Python's signal handlers
        ("rt_sigreturn", []),           # return from any signal handler (SIGTERM, SIGSYS log)
        ("restart_syscall", []),        # a futex/sleep interrupted by a signal resumes
        ("rt_sigtimedwait", []),        # gofer serve's signal thread waits in sigwait(), which
                                        # it enters under the filter (and again after SIGCONT)
        ("sched_yield", []),            # flipcall shutdown waits for a blocked waiter to leave
        ("sched_getaffinity", [((0, EQ, 0),)]),   # flipcall: spin only with >= 2 CPUs (own pid)
        # futex: the GIL and Python's locks (glibc condvars, semaphores,
        # mutexes, rwlocks: WAIT, WAIT_BITSET, WAKE, all PRIVATE, some with
        # CLOCK_REALTIME); flipcall's shared-memory WAIT/WAKE (not private,
        # the peer is another process). No PI, requeue or WAKE_OP ops.
        ("futex", [((1, MASKED_EQ, FUTEX_CMD_MASK, op),)
                   for op in (FUTEX_WAIT, FUTEX_WAKE, FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET)]),

        # --- memory: CPython's allocator and glibc malloc, thread stacks,
        # flipcall windows. Never executable (EXEC_GUARDED).
        ("brk", []),                    # glibc malloc's main arena
        ("mmap", [(not_exec, (3, EQ, flags)) for flags in (
            MAP_SHARED,                                   # flipcall packet window (memfd)
            MAP_PRIVATE,                                  # glibc message catalogs (strerror)
            MAP_PRIVATE | MAP_ANONYMOUS,                  # malloc, pymalloc arenas
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,  # glibc per-thread malloc arenas
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,      # pthread stacks
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,      # as gVisor allows
            MAP_DROPPABLE | MAP_ANONYMOUS,                # glibc >= 2.41 vDSO getrandom state
        )]),
        ("mprotect", [(not_exec,)]),    # thread-stack guard pages, arena growth
        ("munmap", []),
        ("mremap", []),                 # realloc of large blocks (keeps the protection)
        ("madvise", []),                # glibc frees thread stacks and trims arenas
        ("prctl", [((0, EQ, PR_SET_VMA), (1, EQ, PR_SET_VMA_ANON_NAME))]),  # glibc >= 2.39 names mappings
        ("getrandom", []),              # os.urandom, random, hash seeds in library code

        # --- time: normally the vDSO; these are its fallbacks, and sleeps.
        ("clock_gettime", []),
        ("gettimeofday", []),
        ("nanosleep", []),
        ("clock_nanosleep", []),        # time.sleep()

        # --- file descriptors and I/O
        ("read", []),                   # glibc reads /proc/sys/vm/overcommit_memory at thread exit
        ("write", []),                  # logging to stderr, the seccomp log line
        ("close", []),
        ("dup", []),                    # donated FDs (OpenAt, BindAt) are dups
        ("fcntl", [((1, EQ, cmd),) for cmd in (
            F_GETFL, F_SETFL,           # donated FDs are made O_NONBLOCK (dispatch)
            F_GETFD, F_SETFD,           # Python's os.open()/open() CLOEXEC checks
            F_DUPFD_CLOEXEC,            # os.dup() (Service.stop)
            F_ADD_SEALS,                # flipcall's memfd
        )]),
        ("ioctl", [((1, MASKED_EQ, 0xFFFFFFFF, cmd),) for cmd in (
            TCGETS,                     # isatty() when Python opens a file (tracebacks)
            FIONBIO,                    # socket.setblocking()
            FIOCLEX, FIONCLEX,          # os.set_inheritable()
        )]),
        ("lseek", []),                  # Getdents64 restart; Python file objects
        ("pread64", []),                # PRead
        ("pwrite64", []),               # PWrite
        ("fsync", []),                  # FSync
        ("fallocate", []),              # FAllocate: the client's mode is passed on (see docs)
        ("ftruncate", []),              # SetStat size; growing the channel memfd
        ("memfd_create", [((1, EQ, MFD_CLOEXEC | MFD_ALLOW_SEALING),)]),  # channel windows

        # --- the stock backend: walks and opens one component at a time from
        # an FD, reopens through /proc/self/fd (no path from the root).
        ("openat", []),
        ("statx", [(fd_ok(0),)]),       # Stat, Walk, Getdents64 (the entries' devices)
        ("newfstatat", []),             # os.stat/fstat in glibc >= 2.33 (tracebacks, extensions)
        ("fstat", []),                  # the same in older glibc
        ("fstatfs", []),                # FStatFS
        ("getdents64", []),             # Getdents64
        ("mkdirat", []),                # MkdirAt
        ("mknodat", []),                # MknodAt (regular files, the 0:0 whiteout)
        ("symlinkat", []),              # SymlinkAt
        ("readlinkat", []),             # ReadLinkAt
        # LinkAt: linkat(/proc/self/fd, "N", dirfd, name, AT_SYMLINK_FOLLOW);
        # never AT_EMPTY_PATH, never relative to the working directory.
        ("linkat", [(fd_ok(0), fd_ok(2), (4, EQ, flags)) for flags in (0, AT_SYMLINK_FOLLOW)]),
        ("unlinkat", []),               # UnlinkAt, and undoing a failed create
        ("renameat2", []),              # RenameAt2 (and RenameAt on arm64)
        ("renameat", []),               # glibc's renameat2() with flags 0, on x86_64
        ("fchmodat", []),               # SetStat mode, through /proc/self/fd
        ("fchownat", []),               # SetStat uid/gid, create with owner (AT_EMPTY_PATH)
        ("utimensat", []),              # SetStat times, through /proc/self/fd
        ("getxattr", []),               # FGetXattr, through /proc/self/fd
        ("setxattr", []),               # FSetXattr
        ("listxattr", []),              # FListXattr
        ("removexattr", []),            # FRemoveXattr
        ("unlink", []),                 # gofer serve removes its socket when it stops (x86_64)

        # --- LISAFS transport
        ("recvmsg", [((2, EQ, flags),) for flags in (
            MSG_CMSG_CLOEXEC,                             # the connection socket
            MSG_CMSG_CLOEXEC | MSG_DONTWAIT,              # ... polled before it blocks
            MSG_TRUNC | MSG_CMSG_CLOEXEC,                 # fdchannel (gofer.client)
            MSG_TRUNC | MSG_CMSG_CLOEXEC | MSG_DONTWAIT,
        )]),
        ("sendmsg", [((2, EQ, flags),) for flags in (
            MSG_NOSIGNAL,               # responses and donated FDs on the socket
            MSG_DONTWAIT | MSG_NOSIGNAL,    # fdchannel: one FD per datagram, never waiting
        )]),
        ("socketpair", [((0, EQ, AF_UNIX), (1, EQ, SOCK_SEQPACKET | SOCK_CLOEXEC), (2, EQ, 0))]),
        ("shutdown", [((1, EQ, SHUT_RDWR),)]),   # Service.stop ends live connections
        ("getsockname", []),            # Python socket objects made from an FD, and
        ("getpeername", []),            # their repr() (ResourceWarning of Service.stop's)
        ("getsockopt", [((1, EQ, SOL_SOCKET), (2, EQ, opt)) for opt in (
            SO_TYPE, SO_PROTOCOL, SO_DOMAIN,
            SO_PEERCRED,                # gofer serve --allow-uid
            SO_SNDBUF,
        )]),
        # Each connection's send buffer is raised to hold a whole response.
        ("setsockopt", [((1, EQ, SOL_SOCKET), (2, EQ, SO_SNDBUF))]),
        # getrlimit(): ConnectionOpts' default FD cap (gofer serve --extension
        # makes options per client); reading only, of this process.
        ("prlimit64", [((0, EQ, 0), (2, EQ, 0))]),
        ("accept4", [((3, EQ, SOCK_CLOEXEC),)]),  # gofer serve accepts its clients
    ]


def _host_uds(open_, create):
    """gVisor's udsCommon/udsOpen/udsCreate sets, for our host backend."""
    out = []
    if open_ or create:
        # BindAt: socket(AF_UNIX, type|SOCK_CLOEXEC, 0); Connect adds
        # SOCK_NONBLOCK (a full listener answers EAGAIN).
        out.append(("socket", [((0, "EQ", AF_UNIX), (1, "EQ", t | flags), (2, "EQ", 0))
                               for t in (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET)
                               for flags in (SOCK_CLOEXEC, SOCK_CLOEXEC | SOCK_NONBLOCK)]))
    if open_:
        out += [
            ("connect", []),            # Connect, to /proc/self/fd/N of the socket file
            # A connect() interrupted by a signal: Python waits for it to
            # complete with poll() (ppoll on arm64) before it returns.
            ("poll", []),
            ("ppoll", []),
            # ConnectWithCreds: this thread alone takes the sandbox user's
            # euid/egid for the connect and gets its own back (raw syscalls;
            # gVisor's udsOpen set has the same two).
            ("setreuid", []),
            ("setregid", []),
            ("getuid", []),
            ("geteuid", []),
            ("getgid", []),
            ("getegid", []),
        ]
    if create:
        out += [
            ("fchmod", []),             # BindAt sets the socket's mode before bind
            ("bind", []),               # BindAt
            ("listen", []),             # Listen
            ("accept4", [((3, "EQ", SOCK_NONBLOCK | SOCK_CLOEXEC),)]),   # Accept never blocks
        ]
    return out


# ------------------------------------------------------------------ merging

def _arg_tuple(a, where, stock=False):
    """A pyseccomp.Arg (or, in the stock table, a tuple) as (index, op, a, b)."""
    sc = _sc()
    if isinstance(a, sc.Arg):
        t = (a._arg, a._op, a._data_a, a._data_b)
    elif stock and isinstance(a, tuple) and len(a) in (3, 4):
        op = {"EQ": sc.EQ, "MASKED_EQ": sc.MASKED_EQ}.get(a[1], a[1])
        t = (a[0], op, a[2], a[3] if len(a) == 4 else 0)
    else:
        raise ValueError("%s: argument condition %r is not a pyseccomp.Arg" % (where, a))
    idx, op, x, y = t
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in t):
        raise ValueError("%s: argument condition %r has non-integer fields" % (where, a))
    if not 0 <= idx <= 5:
        raise ValueError("%s: argument index %d is not 0..5" % (where, idx))
    if not sc.NE <= op <= sc.MASKED_EQ:
        raise ValueError("%s: unknown comparison operator %d" % (where, op))
    if not (0 <= x <= _MAX_ARG and 0 <= y <= _MAX_ARG):
        raise ValueError("%s: comparison value out of the 64-bit range" % where)
    return t


def _check_name(name, where):
    sc = _sc()
    if not isinstance(name, str) or not name:
        raise ValueError("%s: the syscall name must be a non-empty str" % where)
    if sc.resolve_syscall(sc.Arch.NATIVE, name) == -1:     # __NR_SCMP_ERROR
        # A name another architecture has resolves to a (negative) pseudo
        # number here; only a name no architecture knows is -1.
        raise ValueError("%s: unknown syscall %r" % (where, name))


def _normalize(entry, source):
    """One rule (a name, or (name, [Arg, ...])) as (name, alternative|None)."""
    where = "%s: seccomp rule %r" % (source, entry)
    if isinstance(entry, str):
        name, args = entry, None
    elif isinstance(entry, (tuple, list)) and len(entry) == 2:
        name, args = entry
        if not isinstance(args, (list, tuple)):
            raise ValueError("%s: the arguments must be a list of pyseccomp.Arg" % where)
    else:
        raise ValueError("%s: a rule is a syscall name or (name, [pyseccomp.Arg, ...])" % where)
    _check_name(name, where)
    if args is None or len(args) == 0:
        return name, None
    if len(args) > 6:
        raise ValueError("%s: more than 6 argument conditions" % where)
    conds = tuple(_arg_tuple(a, where) for a in args)
    seen = [c[0] for c in conds]
    if len(set(seen)) != len(seen):
        # libseccomp takes one comparison per argument and rule.
        raise ValueError("%s: two conditions on one argument (use two rules)" % where)
    return name, conds


class _Merged:
    """name -> None (any arguments) or a list of alternatives, in order."""

    def __init__(self):
        self.rules = {}

    def add(self, name, alt):
        if alt is None:
            self.rules[name] = None                 # OR with "any": any
        elif name not in self.rules:
            self.rules[name] = [alt]
        elif self.rules[name] is not None and alt not in self.rules[name]:
            self.rules[name].append(alt)

    def guard_exec(self, sources):
        """Adds "PROT_EXEC clear" to every rule of EXEC_GUARDED syscalls; a
        rule whose own condition on prot lets PROT_EXEC through is an error."""
        sc = _sc()
        for name, argi in EXEC_GUARDED.items():
            if name not in self.rules:
                continue
            out = []
            for alt in self.rules[name] or [()]:
                on_prot = [c for c in alt if c[0] == argi]
                if not on_prot:
                    alt = alt + ((argi, sc.MASKED_EQ, PROT_EXEC, 0),)
                elif not _excludes_exec(on_prot[0], sc):
                    raise ValueError(
                        "%s: seccomp rule %r allows PROT_EXEC; no rule can allow executable "
                        "mappings" % (sources.get((name, alt), "stock"),
                                      (name, [sc.Arg(*c) for c in alt])))
                out.append(alt)
            self.rules[name] = out

    def as_list(self):
        sc = _sc()
        out = []
        for name, alts in self.rules.items():
            if alts is None:
                out.append((name, []))
            else:
                for alt in alts:
                    out.append((name, [sc.Arg(*c) for c in alt]))
        return out


def _excludes_exec(cond, sc):
    _, op, x, y = cond
    if op == sc.EQ:
        return not x & PROT_EXEC
    if op == sc.MASKED_EQ:
        return bool(x & PROT_EXEC) and not y & PROT_EXEC
    return False


def _merge(host_uds_open, host_uds_create, extra):
    m = _Merged()
    for name, alts in _stock() + _host_uds(host_uds_open, host_uds_create):
        if not alts:
            m.add(name, None)
        for alt in alts:
            m.add(name, tuple(_arg_tuple(c, "stock rule %s" % name, stock=True) for c in alt))
    sources = {}
    for item in extra:
        # A rule, or a _Labeled rule from extension_rules().
        if isinstance(item, _Labeled):
            source, entry = item.source, item.rule
        else:
            source, entry = "extra", item
        name, alt = _normalize(entry, source)
        m.add(name, alt)
        sources.setdefault((name, alt), source)
    m.guard_exec(sources)
    return m


class _Labeled:
    __slots__ = ("source", "rule")

    def __init__(self, source, rule):
        self.source, self.rule = source, rule


def rules(host_uds_open=False, host_uds_create=False, extra=()):
    """The merged allowlist: a list of ``(name, [pyseccomp.Arg, ...])``, an
    empty list meaning any arguments; several entries for one name are
    alternatives. `extra` rules (names or ``(name, [Arg, ...])``) widen it;
    a malformed one raises ValueError naming it."""
    return _merge(host_uds_open, host_uds_create, _as_list(extra)).as_list()


def _as_list(extra):
    if isinstance(extra, (str, bytes)) or not hasattr(extra, "__iter__"):
        raise ValueError("seccomp rules must be a list of rules, not %r" % (extra,))
    return list(extra)


def extension_rules(extensions=None):
    """The seccomp rules of the registered extensions (or those given), each
    labelled with its extension so that a bad one is named in the error."""
    from gofer import extension
    out = []
    for ext in extension.registered() if extensions is None else extensions:
        got = ext.seccomp_rules()
        if got is None:
            continue
        label = "extension %s" % ext.name
        if isinstance(got, (str, bytes)) or not hasattr(got, "__iter__"):
            raise ValueError("%s: seccomp_rules() must return a list, not %r" % (label, got))
        out.extend(_Labeled(label, r) for r in got)
    return out


# ------------------------------------------------------------------ building

def arch_token(arch):
    """`arch`: None (native), a pyseccomp.Arch value, or "x86_64"/"amd64"/
    "aarch64"/"arm64"."""
    sc = _sc()
    if arch is None:
        return sc.system_arch()
    if isinstance(arch, str):
        names = {"x86_64": sc.Arch.X86_64, "amd64": sc.Arch.X86_64,
                 "aarch64": sc.Arch.AARCH64, "arm64": sc.Arch.AARCH64}
        if arch not in names:
            raise ValueError("unsupported architecture %r" % arch)
        return names[arch]
    return arch


def allowed_names(rule_list, arch=None):
    """(names the architecture has, names it lacks) of a rule list."""
    sc = _sc()
    token = arch_token(arch)
    have, lack = [], []
    for name, _ in rule_list:
        if name in have or name in lack:
            continue
        (have if sc.resolve_syscall(token, name) >= 0 else lack).append(name)
    return have, lack


def build_filter(rule_list, arch=None, log=False):
    """A pyseccomp.SyscallFilter for `arch` (default: this machine's) with
    the given rules; returns (filter, allowed names, skipped names). Loading
    it is the caller's business (`install` does it)."""
    sc = _sc()
    token = arch_token(arch)
    if log:
        default = sc.TRAP
    elif sc.get_api() >= 3:
        default = sc.KILL_PROCESS       # kernel >= 4.14: the whole gofer goes
    else:
        default = sc.TRAP               # SIGSYS with no handler: the same, with a core
    flt = sc.SyscallFilter(default)
    # A syscall of another ABI (int 0x80, x32) is never ours: always kill.
    flt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS if sc.get_api() >= 3 else sc.KILL)
    flt.set_attr(sc.Attr.CTL_NNP, 1)    # PR_SET_NO_NEW_PRIVS, needed without CAP_SYS_ADMIN
    flt.set_attr(sc.Attr.CTL_TSYNC, 1)  # every thread, as gVisor's SECCOMP_FILTER_FLAG_TSYNC
    if token != sc.system_arch():
        flt.add_arch(token)
        flt.remove_arch(sc.Arch.NATIVE)
    have, lack = allowed_names(rule_list, token)
    have_set = set(have)
    for name, args in rule_list:
        if name not in have_set:
            continue
        try:
            flt.add_rule(sc.ALLOW, name, *args)
        except OSError as e:
            raise ValueError("seccomp rule %r: libseccomp refused it: %s" % (
                (name, args), e.strerror)) from None
    for name, err in ERRNO_RULES.items():
        if name not in have_set and sc.resolve_syscall(token, name) >= 0:
            flt.add_rule(sc.ERRNO(err), name)
    return flt, have, lack


def syscall_names(arch=None):
    """{number: name} of the architecture, from libseccomp (for log lines)."""
    sc = _sc()
    token = arch_token(arch)
    out = {}
    for nr in range(1024):
        try:
            out[nr] = sc.resolve_syscall(token, nr).decode()
        except ValueError:
            pass
    return out


_preloaded = []


def _preload():
    """Loads what glibc would otherwise dlopen() under the filter.

    A thread that ends through pthread_exit() -- CPython does that to a
    daemon thread that wants the GIL back while the interpreter finalizes,
    e.g. a connection thread when the gofer stops -- makes glibc dlopen
    libgcc_s.so.1 for the unwinder. Under the filter that dlopen would need
    an executable mmap: the gofer would die of SIGSYS on its way out. Once
    the library is loaded, glibc's dlopen finds it by soname and maps nothing.
    """
    if _preloaded:
        return
    import ctypes
    try:
        _preloaded.append(ctypes.CDLL("libgcc_s.so.1"))
    except OSError as e:             # a static or musl build has no libgcc_s
        _log.debug("seccomp: cannot preload libgcc_s.so.1: %s", e)


def prepare(extra_rules=(), log=False, host_uds_open=False, host_uds_create=False):
    """Builds the filter and loads everything it will need (libseccomp,
    libgcc_s, the log-mode handler) while the filesystem is still reachable;
    returns `load()`, which puts the filter on -- after a chroot, say.
    `extra_rules` widen the allowlist (see `rules`). With `log`, a syscall
    outside it is logged to stderr and fails with ENOSYS instead of killing
    the process."""
    rule_list = rules(host_uds_open=host_uds_open, host_uds_create=host_uds_create,
                      extra=extra_rules)
    flt, have, lack = build_filter(rule_list, log=log)
    _preload()
    if log:
        # Before the filter: the first trapped syscall needs the handler.
        from gofer import _sandbox
        _sandbox.install_sigsys_handler(syscall_names())

    def load():
        """Loads the filter into this process (all its threads); it cannot
        be removed. Returns the names allowed on this architecture."""
        if log:
            _log.warning("seccomp log mode: syscalls outside the allowlist are logged and "
                         "fail with ENOSYS instead of killing the gofer; not for production")
        _log.info("seccomp: allowing %d syscalls (%s)", len(have), ", ".join(sorted(have)))
        try:
            flt.load()
        except OSError as e:
            raise OSError(e.errno, "loading the seccomp filter: %s" % e.strerror) from None
        return have
    return load


def install(extra_rules=(), log=False, host_uds_open=False, host_uds_create=False):
    """`prepare(...)()`: builds and loads the filter now."""
    return prepare(extra_rules, log, host_uds_open, host_uds_create)()


# ------------------------------------------------------------------ the command

HOST_UDS = {"none": (False, False), "open": (True, False), "create": (False, True),
            "all": (True, True)}


MODES = ("off", "log", "kill")


def parse_mode(text):
    """The value of ``--seccomp``: off, log or kill. A Go boolean is taken
    too, as `gofer gofer` is a Go-style command: true is kill, false off."""
    if text in MODES:
        return text
    from gofer.goflag import parse_bool
    try:
        return "kill" if parse_bool(text) else "off"
    except ValueError:
        raise ValueError("%r is not a seccomp mode: off, log or kill" % text) from None


def install_for_serve(args):
    """`gofer serve --seccomp=log|kill`: installs the filter with the
    registered extensions' rules and the --host-uds policy. Called right
    before the accept loop, once everything is imported and the listener is
    made. Does nothing under --seccomp=off."""
    mode = getattr(args, "seccomp", "off")
    if mode == "off":
        return None
    uds_open, uds_create = HOST_UDS.get(getattr(args, "host_uds", "none"), (False, False))
    return install(extension_rules(), log=mode == "log", host_uds_open=uds_open,
                   host_uds_create=uds_create)
