"""Issues 2 and 3: our gofer under gVisor's Go client — mount, stat, walk, open,
read, getdents; flipcall channels, concurrent RPCs and FD donation over a channel.

Every test runs over the socket only and again with StartChannels. Where gVisor's
fsgofer (refgofer) is the reference, the same operations run against it on an
identical tree and the answers are compared.
"""

import os
import stat
import sys

import pytest

from .gofer_env import DT, FILE_BYTES, assert_matches_host, build_tree


@pytest.fixture
def dedicated(start_server, sock_dir, refgofer):
    """dedicated(kind) -> (socket, host root): a server of its own on a fresh tree,
    for the checks that look at the mount root itself."""
    def start(kind="gofer"):
        root = sock_dir / f"{kind}-root"
        root.mkdir()
        build_tree(root)
        sock = sock_dir / f"{kind}.sock"
        if kind == "gofer":
            argv = [sys.executable, "-m", "gofer", "serve", root, "--socket", sock]
        else:
            argv = [refgofer, "-root", root, "-socket", sock]
        start_server(argv, sock)
        return sock, root
    return start


def test_mount_root_matches_host(dedicated, go_client, transport):
    sock, root = dedicated("gofer")
    gc = go_client(sock, channels=transport)
    assert_matches_host(gc.root["stat"], os.stat(root))
    assert_matches_host(gc.call("fstat", fd=gc.root_fd)["stat"], os.stat(root))
    assert gc.mount["max_message_size"] > 0
    assert (gc.mount["channels"] > 0) == transport
    assert gc.mount["mount_fd"] is False  # like fsgofer without directfs


def test_mount_advertises_what_fsgofer_does(dedicated, go_client, transport):
    ours = go_client(dedicated("gofer")[0], channels=transport).mount
    ref = go_client(dedicated("ref")[0], channels=transport).mount
    assert set(ours["supported"]) == set(ref["supported"])
    assert ours["max_message_size"] == ref["max_message_size"]


def _root_dirents(gc):
    ofd = gc.call("open_at", fd=gc.root_fd, flags=os.O_RDONLY)["open_fd"]
    ents = []
    while batch := gc.call("getdents64", fd=ofd, count=65536)["dirents"]:
        ents += batch
    gc.call("close", fd=ofd)
    return ents


def test_getdents_of_root_lists_host(dedicated, go_client, transport):
    sock, root = dedicated("gofer")
    gc = go_client(sock, channels=transport)
    ents = _root_dirents(gc)
    names = [e["name"] for e in ents]
    assert sorted(set(names) - {".", ".."}) == sorted(os.listdir(root))
    assert len(names) == len(set(names))
    dev = os.stat(root).st_dev
    for e in ents:
        if e["name"] in (".", ".."):
            continue
        st = os.lstat(root / e["name"])
        assert e["ino"] == st.st_ino, e
        assert (e["dev_major"], e["dev_minor"]) == (os.major(dev), os.minor(dev))
        assert e["type"] == DT[stat.S_IFMT(st.st_mode)], e
    # Offsets let a client resume: they are distinct and non-zero.
    assert len({e["off"] for e in ents}) == len(ents) and all(e["off"] for e in ents)


def test_getdents_omits_dot_and_dotdot_like_fsgofer(dedicated, go_client, transport):
    ref = [e["name"] for e in _root_dirents(go_client(dedicated("ref")[0], channels=transport))]
    assert not {".", ".."} & set(ref)  # the reference, for the record
    names = [e["name"] for e in _root_dirents(go_client(dedicated("gofer")[0],
                                                        channels=transport))]
    assert sorted(names) == sorted(ref)


def test_walk_to_file_and_fstat(ours):
    for path in ("file.bin", "sub", "sub/inner.txt", "sub/deeper/leaf", "link", "dirlink"):
        ino = ours.walk(path)
        st = os.lstat(ours.host / path)
        assert_matches_host(ino["stat"], st)
        assert_matches_host(ours.fstat(ino["fd"]), st)
    assert_matches_host(ours.fstat(ours.top), os.stat(ours.host))


def test_open_at_and_pread_exact_bytes(ours):
    fd = ours.walk("file.bin")["fd"]
    r = ours.call("open_at", fd=fd, flags=os.O_RDONLY, read_host=len(FILE_BYTES) + 10)
    assert r["host_fd"] is True  # regular files come with a host FD, like fsgofer
    assert r["host_data"] == FILE_BYTES
    assert r["host_stat"]["ino"] == os.stat(ours.host / "file.bin").st_ino
    assert r["host_flags"] & os.O_ACCMODE == os.O_RDONLY
    ofd = r["open_fd"]
    assert ours.call("pread", fd=ofd, count=len(FILE_BYTES) + 100)["data"] == FILE_BYTES
    assert ours.call("pread", fd=ofd, offset=1000, count=7)["data"] == FILE_BYTES[1000:1007]
    end = ours.call("pread", fd=ofd, offset=len(FILE_BYTES), count=10)
    assert end["data"] == b"" and end.get("eof") is True
    assert_matches_host(ours.fstat(ofd), os.stat(ours.host / "file.bin"))


def test_getdents_of_subdir(ours):
    ents = ours.listdir("sub")
    assert sorted(e["name"] for e in ents) == sorted(os.listdir(ours.host / "sub"))
    for e in ents:
        st = os.lstat(ours.host / "sub" / e["name"])
        assert (e["ino"], e["type"]) == (st.st_ino, DT[stat.S_IFMT(st.st_mode)])
        assert (e["dev_major"], e["dev_minor"]) == (os.major(st.st_dev), os.minor(st.st_dev))


def test_basics_same_as_fsgofer(open_side):
    """The same walk/open/read/getdents sequence answers the same on both servers."""
    def run(side):
        out = []
        for path in ("file.bin", "sub", "link", "sub/deeper/leaf"):
            st = side.walk(path)["stat"]
            out.append((path, stat.S_IFMT(st["mode"]), st["size"] if not stat.S_ISDIR(st["mode"])
                        else None, st["nlink"], hex(st["mask"])))
        for path in ("file.bin", "sub"):
            r = side.open(path)
            out.append((path, r["host_fd"]))
        out.append(side.read_file("sub/inner.txt"))
        out.append(sorted(set(side.names("sub")) - {".", ".."}))
        return out
    assert run(open_side("gofer")) == run(open_side("ref"))


# -- Issue 3: channels ------------------------------------------------------------

def test_parallel_rpcs_get_correct_answers(ours, transport):
    files = {f"f{i}": os.urandom(3000 + i) for i in range(8)}
    for name, data in files.items():
        (ours.host / name).write_bytes(data)
    reqs, expect = [], []
    for name, data in files.items():
        ino = ours.walk(name)
        ofd = ours.open(name)["open_fd"]
        reqs += [{"op": "pread", "fd": ofd, "count": 8192, "offset": 7},
                 {"op": "fstat", "fd": ino["fd"]},
                 {"op": "walk_stat", "fd": ours.top, "names": [name]}]
        ino_no = os.stat(ours.host / name).st_ino
        expect += [("data", data[7:]), ("ino", ino_no), ("ino", ino_no)]
    n, repeat = 6, 15
    r = ours.call("parallel", goroutines=n, repeat=repeat, requests=reqs, timeout=60)
    assert (r["ok_count"], r["err_count"]) == (n * repeat * len(reqs), 0), r["errnos"]
    for g in r["results"]:
        assert len(g) == repeat * len(reqs)
        for i, res in enumerate(g):
            kind, want = expect[i % len(reqs)]
            if kind == "data":
                assert res["data"] == want
            elif "stat" in res:
                assert res["stat"]["ino"] == want
            else:
                assert [s["ino"] for s in res["stats"]] == [want]
    if transport:
        assert ours.gc.mount["channels"] >= 1
    assert ours.call("fstat", fd=ours.top)["ok"]


def test_parallel_creates_race_to_one_winner(ours):
    """All goroutines create the same names at once: each name is made exactly once
    (the rest get EEXIST), then all remove them at once (the rest get ENOENT)."""
    names = [f"m{k}" for k in range(20)]
    mk = [{"op": "mkdir_at", "fd": ours.top, "name": n, "mode": 0o755} for n in names]
    r = ours.call("parallel", goroutines=6, repeat=1, requests=mk, summary=True)
    assert (r["ok_count"], r["errnos"]) == (20, {"17": 100})
    assert sorted(p for p in os.listdir(ours.host) if p.startswith("m")) == sorted(names)
    rm = [{"op": "unlink_at", "fd": ours.top, "name": n, "flags": 0x200} for n in names]
    r = ours.call("parallel", goroutines=6, repeat=1, requests=rm, summary=True)
    assert (r["ok_count"], r["errnos"]) == (20, {"2": 100})
    assert not [p for p in os.listdir(ours.host) if p.startswith("m")]


def test_fd_donation_over_channel(ours, transport):
    data = os.urandom(200_000)
    (ours.host / "big").write_bytes(data)
    r = ours.open("big", read_host=len(data) + 1, read_host_offset=0)
    assert r["host_fd"] is True and r["host_data"] == data
    assert r["host_stat"]["ino"] == os.stat(ours.host / "big").st_ino
    # Write through a donated FD of a new file; read it back over the RPC path.
    c = ours.call("open_create_at", fd=ours.top, name="new", flags=os.O_RDWR, mode=0o600,
                  write_host=b"via-donated-fd", write_host_offset=3)
    assert c["host_fd"] is True and c["host_written"] == 14
    assert ours.call("pread", fd=c["open_fd"], count=100)["data"] == b"\0\0\0via-donated-fd"
    assert (ours.host / "new").read_bytes() == b"\0\0\0via-donated-fd"
    # Many donations in a row: none is lost or mixed up.
    for i in range(20):
        r = ours.open("file.bin", read_host=16, read_host_offset=i * 16)
        assert r["host_data"] == FILE_BYTES[i * 16:(i + 1) * 16]
        ours.call("close", fd=r["open_fd"])


def test_parallel_opens_donate_the_right_fds(ours):
    for i in range(4):
        (ours.host / f"p{i}").write_bytes(bytes([65 + i]) * 64)
    ctl = [ours.walk(f"p{i}")["fd"] for i in range(4)]
    reqs = [{"op": "open_at", "fd": c, "flags": os.O_RDONLY, "read_host": 64} for c in ctl]
    r = ours.call("parallel", goroutines=4, repeat=10, requests=reqs)
    assert r["err_count"] == 0, r["errnos"]
    for g in r["results"]:
        for i, res in enumerate(g):
            assert res["host_fd"] is True
            assert res["host_data"] == bytes([65 + i % 4]) * 64
    # The open FDs are never closed by the goroutines; closing them all in a batch is fine.
    ids = [res["open_fd"] for g in r["results"] for res in g]
    ours.call("close_batch", fds=ids)
    assert ours.errno("pread", fd=ids[0], count=1) == 9  # EBADF
