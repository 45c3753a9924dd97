"""The conformance kit (gofer.testing) on the stock backend and on memfs,
and the public API's promises (gofer.lisafs) that the kit relies on."""
import ast
import enum
import errno
import fcntl
import os
import pathlib
import pickle
import re
import stat

import pytest

import gofer_memfs
from gofer import lisafs
from gofer.fsgofer import HostConnection
from gofer.lisafs import (MID, Child, ConnectionImpl, ControlFDImpl, MountResult, OpenFDImpl,
                          OpenResult, Statx)
from gofer.testing import CHECKS, claimed_checks, conformance_tests

test_stock_backend = conformance_tests(lambda workdir: HostConnection(workdir))
test_memfs = conformance_tests(lambda workdir: gofer_memfs.MemConnection())


def test_both_backends_claim_every_check():
    names = [c.__name__ for c in CHECKS]
    assert [c.__name__ for c in claimed_checks(lambda w: gofer_memfs.MemConnection())] == names
    assert [c.__name__ for c in claimed_checks(HostConnection)] == names


def test_memfs_imports_nothing_private():
    src = pathlib.Path(gofer_memfs.__file__).read_text()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.ImportFrom):
            assert not any(p.startswith("_") for p in node.module.split(".")), node.module
            assert not any(a.name.startswith("_") for a in node.names), ast.dump(node)
        elif isinstance(node, ast.Import):
            for a in node.names:
                assert not any(p.startswith("_") for p in a.name.split(".")), a.name


def test_lisafs_exports_what_it_lists():
    for name in lisafs.__all__:
        assert not name.startswith("_") and hasattr(lisafs, name), name
    assert MID.FStat == 3 and MID.RenameAt2 == 33 and MID(24).name == "Getdents64"


def test_mid_behaves_as_the_int_enum_it_replaces():
    """MID is made without the enum module (start-up); what an extension
    does with an IntEnum works the same."""
    ref = enum.IntEnum("MID", [(m.name, int(m)) for m in MID])
    assert len(MID) == len(ref) == 34
    for m, r in zip(MID, ref):
        assert (m.name, m.value, int(m), hash(m)) == (r.name, r.value, int(r), hash(r))
        assert repr(m) == repr(r) and str(m) == str(r) and f"{m:>4}" == f"{r:>4}"
        assert MID(int(m)) is m and MID[m.name] is m and getattr(MID, m.name) is m
        assert isinstance(m, MID) and m == r and m in MID
        assert pickle.loads(pickle.dumps(m)) is m
    assert sorted({MID.Walk, MID.Mount}) == [MID.Mount, MID.Walk]
    assert list(MID.__members__) == list(ref.__members__)
    for bad in (-1, 34, "3", 3.0, None):
        with pytest.raises(ValueError):
            MID(bad)
    with pytest.raises(KeyError):
        MID["Nope"]


# ---------------------------------------------------------------- a tiny backend

DIR = stat.S_IFDIR | 0o755
REG = stat.S_IFREG | 0o644


def st(mode, ino):
    return Statx(mask=lisafs.STATX_BASIC_STATS, mode=mode, ino=ino, nlink=1)


class Root(ControlFDImpl):
    """A directory of `count` files; `deny` names answer EACCES; `style`
    picks the return shapes."""

    def __init__(self, style="new", deny=(), count=3, donate=None, listing=None):
        self.style, self.deny, self.count, self.donate = style, deny, count, donate
        self.listing = listing or Listing

    def stat(self):
        return st(DIR, 1)

    def walk(self, name):
        if name in self.deny:
            raise OSError(errno.EACCES)                  # one argument
        if name == b"missing-old" and self.style == "old":
            return None
        if not name.startswith(b"f") or int(name[1:] or -1) not in range(self.count):
            raise OSError(errno.ENOENT)                  # one argument: no subclass
        child = File(int(name[1:]) + 2, self.donate)
        return Child(child, child.stat()) if self.style == "new" else (child, child.stat())

    def open(self, flags):
        listing = self.listing(self.count)
        return OpenResult(listing) if self.style == "new" else listing


class File(ControlFDImpl):
    def __init__(self, ino, donate):
        self.ino, self.donate = ino, donate

    def stat(self):
        return st(REG, self.ino)

    def open(self, flags):
        fd = os.open(self.donate, os.O_RDONLY) if self.donate else None   # blocking, inheritable
        return OpenResult(Data(), fd)


class Data(OpenFDImpl):
    def read(self, offset, count):
        return b"data"[offset:offset + count]


class Listing(OpenFDImpl):
    def __init__(self, count):
        self.count = count

    def readdir(self):
        return [lisafs.Dirent(ino=i + 2, dev_minor=0, dev_major=0, off=0, type=8,
                              name=b"f%d" % i) for i in range(self.count)]


class Tiny(ConnectionImpl):
    def __init__(self, **kw):
        self.kw = kw

    def mount(self):
        return MountResult(Root(**self.kw))


def test_one_argument_oserror_answers_its_errno(connect_impl):
    c = connect_impl(Tiny(deny=(b"secret",)))
    try:
        c.walk(c.root.control_fd, [b"secret"])
    except OSError as e:
        assert e.errno == errno.EACCES
    else:
        raise AssertionError("walk of a denied name succeeded")
    # OSError(errno.ENOENT) with one argument still means "does not exist".
    assert c.walk(c.root.control_fd, [b"nope"]) == (lisafs.WALK_COMPONENT_DOES_NOT_EXIST, [])


def test_old_and_new_return_shapes(connect_impl):
    for style in ("old", "new"):
        c = connect_impl(Tiny(style=style))
        status, inodes = c.walk(c.root.control_fd, [b"f1"])
        assert status == lisafs.WALK_SUCCESS and inodes[0].stat.ino == 3
        fd, host = c.open_at(inodes[0].control_fd, os.O_RDONLY)
        assert host is None and c.pread(fd, 0, 10) == b"data"
        assert c.walk(c.root.control_fd, [b"missing-old"])[0] == \
            lisafs.WALK_COMPONENT_DOES_NOT_EXIST


def test_supported_messages_default_to_what_is_implemented(connect_impl):
    c = connect_impl(Tiny())
    claimed = c.supported - {MID.Mount, MID.Channel}
    assert claimed == {MID.FStat, MID.Walk, MID.WalkStat, MID.Close, MID.FSync, MID.OpenAt,
                       MID.PRead, MID.Getdents64}
    assert MID.PWrite not in c.supported and MID.MkdirAt not in c.supported


def test_server_pages_readdir(connect_impl):
    c = connect_impl(Tiny(count=200))
    fd, _ = c.open_at(c.root.control_fd, os.O_RDONLY)
    names = []
    while True:
        batch = c.getdents64(fd, 100)
        if not batch:
            break
        assert len(batch) < 200 and sum(27 + len(d.name) for d in batch) <= 100 + 27 + 4
        names += [d.name for d in batch]
    assert names == [b"f%d" % i for i in range(200)]
    assert [d.off for d in c.getdents64(fd, -100)][:2] == [1, 2]     # restarts


def short_names(n):
    """n distinct names of at most 3 bytes: the most dirents a message holds."""
    digits = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [bytes([digits[i // 3844], digits[i // 62 % 62], digits[i % 62]]) for i in range(n)]


class Crowded(Listing):
    def readdir(self):
        return [lisafs.Dirent(ino=i + 2, dev_minor=0, dev_major=0, off=0, type=8, name=name)
                for i, name in enumerate(short_names(self.count))]


class Unpaged(Crowded):
    def getdents64(self, count, seek0):
        return self.readdir()


def test_dirent_count_never_wraps_its_u16(connect_impl):
    # 66000 entries fit one 2 MiB response in bytes but not in the u16 count.
    for listing, whole in ((Crowded, True), (Unpaged, False)):
        c = connect_impl(Tiny(count=66000, listing=listing))
        fd, _ = c.open_at(c.root.control_fd, os.O_RDONLY)
        budget = c.max_message_size - 64
        if whole:       # the pager stops at 65535 and the rest follows, none lost
            first = c.getdents64(fd, budget)
            assert len(first) == 0xFFFF
            assert [d.name for d in first + c.getdents64(fd, budget)] == short_names(66000)
        else:           # a backend's own oversized answer is an error, not a wrapped count
            with pytest.raises(OSError) as e:
                c.getdents64(fd, budget)
            assert e.value.errno == errno.EIO


def test_donated_fds_are_prepared_centrally(connect_impl, tmp_path):
    (tmp_path / "x").write_bytes(b"host")
    c = connect_impl(Tiny(donate=str(tmp_path / "x")))
    _, inodes = c.walk(c.root.control_fd, [b"f0"])
    fd, host = c.open_at(inodes[0].control_fd, os.O_RDONLY)
    try:
        # O_NONBLOCK lives in the shared file description: the server set it.
        assert fcntl.fcntl(host, fcntl.F_GETFL) & os.O_NONBLOCK
        assert os.pread(host, 4, 0) == b"host"
    finally:
        os.close(host)


# ---------------------------------------------------------------- contracts

def test_every_public_method_has_its_contract_in_its_docstring():
    import pydoc
    tables = {ControlFDImpl: lisafs._CONTROL_METHODS, OpenFDImpl: lisafs._OPEN_METHODS,
              lisafs.BoundSocketFDImpl: lisafs._SOCKET_METHODS,
              ConnectionImpl: {"mount": [MID.Mount]}}
    tables[ControlFDImpl] = dict(tables[ControlFDImpl], stat=[MID.FStat],
                                 walk=[MID.Walk, MID.WalkStat])
    tables[OpenFDImpl] = dict(tables[OpenFDImpl], stat=[MID.FStat], readdir=[])
    for cls, served in tables.items():
        methods = [n for n, v in vars(cls).items() if not n.startswith("_") and callable(v)]
        assert set(served) <= set(methods), (cls, set(served) - set(methods))
        for name in methods:
            doc = getattr(cls, name).__doc__ or ""
            where = "%s.%s" % (cls.__name__, name)
            assert re.search(r"^\s*Lock: (read|write|global|none)", doc, re.M), \
                where + " states no lock"
            first = doc.partition("\n")[0]
            for mid in served.get(name, []):
                if name != "readdir":
                    assert mid.name in first, "%s does not name %s" % (where, mid.name)
            if served.get(name):
                assert "Returns" in doc, where + " does not say what it returns"
    # help() shows it, and the stub repeats no contract (one place for each).
    assert "Lock: read, on this directory." in pydoc.render_doc(ControlFDImpl.walk)
    stub = ast.parse(pathlib.Path(lisafs.__file__).with_suffix(".pyi").read_text())
    for cls in (n for n in stub.body if isinstance(n, ast.ClassDef)):
        for fn in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
            assert ast.get_docstring(fn) is None, "lisafs.pyi repeats %s.%s's" % (cls.name,
                                                                                  fn.name)
