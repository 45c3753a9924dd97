"""gofer.goflag: command lines parsed as Go's flag package (runsc's) parses them."""
import pytest

from gofer import runsc_gofer
from gofer.extension import Extension
from gofer.goflag import FlagError, FlagSet, HelpRequested, parse_bool, parse_int


def flags(**kw):
    fs = FlagSet("t", **kw)
    fs.add_argument("--name", default="", help="a string")
    fs.add_argument("--n", type=int, default=-1, help="an int")
    fs.add_argument("--on", type=bool, default=True, help="a boolean")
    fs.add_argument("--quiet", action="store_true", help="a boolean, off unless given")
    fs.add_argument("--fd", type=int, action="append", help="repeatable")
    fs.add_argument("--mode", nargs="?", const="kill", default="off", choices=("off", "kill"),
                    help="boolean-like: -mode alone is kill")
    return fs


def parse(args, **kw):
    ns, rest = flags(**kw).parse(args)
    return vars(ns), rest


def test_every_spelling_go_takes():
    ns, rest = parse(["-name=a", "--n", "7", "-on=false", "--quiet", "-fd", "3", "--fd=4",
                      "-mode", "x", "y"])
    assert ns == dict(name="a", n=7, on=False, quiet=True, fd=[3, 4], mode="kill")
    assert rest == ["x", "y"]
    assert parse(["--mode=off", "--on=T", "--quiet=0"])[0] | {} == dict(
        name="", n=-1, on=True, quiet=False, fd=[], mode="off")


@pytest.mark.parametrize("args, rest", [
    (["a", "-n", "1"], ["a", "-n", "1"]),           # flags end at the first argument
    (["-n", "1", "--", "-n", "2"], ["-n", "2"]),    # and at --, which is dropped
    (["-", "-n", "1"], ["-", "-n", "1"]),           # - is an argument
    (["-on", "false"], ["false"]),                  # a boolean's value only with =
    (["-name", "-n"], []),                          # a value may look like a flag
])
def test_where_flags_end(args, rest):
    assert parse(args)[1] == rest


def test_interleaved_arguments_are_set_aside_until_the_flags_end():
    ns, rest = flags().parse(["a", "-n", "1", "-", "--quiet", "b", "--", "-n", "2"],
                             interleaved=True)
    assert (ns.n, ns.quiet, rest) == (1, True, ["a", "-", "b", "-n", "2"])


@pytest.mark.parametrize("args, message", [
    (["--nope"], "unknown flag: --nope"),
    (["-nope=1"], "unknown flag: -nope"),
    (["---n=1"], "bad flag syntax: ---n=1"),
    (["-=1"], "bad flag syntax: -=1"),
    (["-n"], "flag needs a value: -n"),
    (["-n", "x"], "invalid value 'x' for -n: not an integer"),
    (["-on=yes"], "invalid value 'yes' for -on: not a boolean (true or false)"),
    (["-mode=log"], "invalid value 'log' for -mode (one of: off, kill)"),
])
def test_refused(args, message):
    with pytest.raises(FlagError) as e:
        flags().parse(args)
    assert str(e.value) == message


def test_help_and_unknown_flags_with_a_value():
    for h in ("-h", "--help", "-help"):
        with pytest.raises(HelpRequested):
            flags().parse([h])
    ns, rest = flags(keep_unknown=True).parse(["--later=1", "-n", "2", "c"])
    assert (ns.unknown, ns.n, rest) == ({"later": "1"}, 2, ["c"])
    with pytest.raises(FlagError):                  # without =, its arity is unknown
        flags(keep_unknown=True).parse(["--later", "1"])


def test_go_numbers_and_booleans():
    assert [parse_int(t) for t in ("10", "-10", "+3", "0x1f", "0o17", "017", "0b11", "1_000",
                                   "0")] == [10, -10, 3, 31, 15, 15, 3, 1000, 0]
    for bad in ("", "08", "1.5", "0x", str(2**63)):
        with pytest.raises(ValueError):
            parse_int(bad)
    assert [parse_bool(t) for t in ("1", "t", "T", "TRUE", "true", "True")] == [True] * 6
    assert [parse_bool(t) for t in ("0", "f", "F", "FALSE", "false", "False")] == [False] * 6
    for bad in ("yes", "tRUE", ""):
        with pytest.raises(ValueError):
            parse_bool(bad)


def test_usage_lists_flags_with_help_and_defaults():
    text = flags().usage("[flags] ID")
    assert text.startswith("usage: t [flags] ID\n")
    assert "\n  -n int " in text and "(default -1)" in text
    assert "\n  --on " in text and "(default true)" in text
    assert "\n  --mode[=string] " in text


class Blobstore(Extension):
    """Flags written for argparse, as docs/extensions.md shows them."""
    name = "blobstore"

    def add_flags(self, parser):
        parser.add_argument("--blobstore-endpoint", help="where the blobs are")
        parser.add_argument("--blobstore-retries", type=int, default=3, help="retries")
        parser.add_argument("--blobstore-cache", action="store_true", help="cache blobs")


def test_an_extensions_argparse_style_flags_parse_the_go_way():
    fs = runsc_gofer.build_flags([Blobstore()])
    ns, rest = fs.parse(["--io-fds=3,4", "-blobstore-endpoint", "unix:/b", "--blobstore-cache",
                         "--seccomp", "c"])
    assert (ns.blobstore_endpoint, ns.blobstore_retries, ns.blobstore_cache) == ("unix:/b", 3,
                                                                                True)
    assert (ns.io_fds, ns.seccomp, ns.apply_caps, rest) == ([[3, 4]], "kill", True, ["c"])
    assert "--blobstore-endpoint" in fs.usage()
