"""Command-line flags parsed the way Go's `flag` package parses them.

runsc parses its command line with Go's `flag` package, so `gofer gofer`
(the drop-in for `runsc gofer`) does too, with this small parser: it
imports nothing and keeps the sandbox's start-up cheap.

    fs = FlagSet("gofer gofer")
    fs.add_argument("--bundle", default="", help="the bundle directory")
    fs.add_argument("--io-fds", type=int, action="append", help="...")
    fs.add_argument("--apply-caps", type=bool, default=True, help="...")
    opts, rest = fs.parse(argv)

Go's rules:

- ``-name`` and ``--name`` are the same flag;
- a flag that takes a value: ``-name=value`` or ``-name value``;
- a boolean flag: ``-name`` (true) or ``-name=value`` only (``1 t T TRUE
  true True``, ``0 f F FALSE false False``); ``-name false`` is the flag,
  then an argument;
- flags end at the first argument that is not one, at ``--`` (dropped), or
  at ``-``; what follows is returned;
- ``-h``/``-help`` asks for the usage (`HelpRequested`).

``parse(args, interleaved=True)`` lets arguments come between flags, as
argparse does (``gofer serve DIR --socket PATH``): each one that is not a
flag is set aside and returned, in order, with what follows ``--``.

`FlagSet.add_argument` takes a subset of argparse's, so an extension's
``add_flags(parser)`` reads the same whichever parser it is given:
``action`` store (default), ``store_true``, ``store_false`` or ``append``;
``type`` (``bool`` for a boolean flag); ``default``, ``choices``, ``help``,
``metavar``, ``dest``, ``required``; ``nargs="?"`` with ``const`` for a flag
that is boolean-like (``-name`` means `const`) but also takes
``-name=value``, as a Go flag whose value has ``IsBoolFlag``.
"""

__all__ = ["FlagSet", "FlagError", "HelpRequested", "parse_bool", "parse_int"]


class FlagError(Exception):
    """A command line the flags do not accept, said in one line."""


class HelpRequested(Exception):
    """-h or -help was given."""


def parse_bool(text):
    """Go's strconv.ParseBool."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError("not a boolean (true or false)")


def parse_int(text):
    """Go's strconv.ParseInt(text, 0, 64): decimal, 0x, 0o, 0b, or a leading 0
    for octal; underscores between digits."""
    digits = text.lstrip("+-")
    if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
        text = text.replace(digits, "0o" + digits[1:], 1)
    try:
        value = int(text, 0)
    except ValueError:
        raise ValueError("not an integer") from None
    if not -2**63 <= value < 2**63:
        raise ValueError("out of range")
    return value


class _Flag:
    __slots__ = ("names", "dest", "convert", "boolean", "const", "append", "default",
                 "choices", "help", "metavar", "required")

    def describe(self):
        return " or ".join("-" * min(len(n), 2) + n for n in self.names)


class FlagSet:
    """Flags with Go's syntax; `parse` returns (a namespace, the arguments left)."""

    def __init__(self, prog, description=None, keep_unknown=False):
        """`keep_unknown`: an undefined ``-name=value`` is kept in the
        namespace's ``unknown`` dict instead of refused (an undefined flag
        without a value is still refused: whether the next argument is its
        value cannot be known)."""
        self.prog = prog
        self.description = description
        self.keep_unknown = keep_unknown
        self._flags = []
        self._by_name = {}

    def add_argument(self, *names, action="store", type=None, default=None, const=None,
                     nargs=None, choices=None, help=None, metavar=None, dest=None,
                     required=False):
        """Defines a flag (argparse's call, the subset in the module doc)."""
        if not names or any(not n.startswith("-") or n.strip("-") == "" for n in names):
            raise ValueError("%s: a flag's names are -x or --name, not %r" % (self.prog, names))
        f = _Flag()
        f.names = [n.lstrip("-") for n in names]
        for n in f.names:
            if n in self._by_name:
                raise ValueError("%s: flag -%s is defined twice" % (self.prog, n))
        if action not in ("store", "store_true", "store_false", "append"):
            raise ValueError("%s: -%s: action %r is not supported" % (self.prog, f.names[0],
                                                                      action))
        if nargs not in (None, "?") or (nargs == "?" and action != "store"):
            raise ValueError("%s: -%s: nargs %r is not supported" % (self.prog, f.names[0],
                                                                     nargs))
        f.dest = dest or max(f.names, key=len).replace("-", "_")
        f.boolean = action in ("store_true", "store_false") or type is bool or nargs == "?"
        if action in ("store_true", "store_false"):
            f.convert = parse_bool
            f.const = action == "store_true"
            default = (action == "store_false") if default is None else default
        elif type is bool:
            f.convert, f.const = parse_bool, True
        else:
            f.convert = parse_int if type is int else (type or str)
            f.const = const
        f.append = action == "append"
        f.default = ([] if f.append else None) if default is None else default
        f.choices, f.help, f.required = choices, help, required
        f.metavar = metavar or ("" if f.boolean and nargs != "?" else
                                "int" if type is int else
                                "string" if type in (None, str) else "value")
        self._flags.append(f)
        for n in f.names:
            self._by_name[n] = f
        return f

    def parse(self, args, interleaved=False):
        """(namespace, remaining arguments). Raises FlagError or HelpRequested."""
        ns = Namespace()
        for f in self._flags:
            setattr(ns, f.dest, list(f.default) if f.append else f.default)
        if self.keep_unknown:
            ns.unknown = {}
        seen = set()
        args = list(args)
        positional = []
        while args:
            s = args[0]
            if len(s) < 2 or s[0] != "-":
                if not interleaved:
                    break
                positional.append(args.pop(0))
                continue
            dashes = 2 if s[1] == "-" else 1
            if s == "--":
                del args[0]
                break
            name, eq, value = s[dashes:].partition("=")
            if not name or name[0] in "-=":
                raise FlagError("bad flag syntax: %s" % s)
            del args[0]
            f = self._by_name.get(name)
            if f is None:
                if name in ("h", "help"):
                    raise HelpRequested()
                if self.keep_unknown and eq:
                    ns.unknown[name] = value
                    continue
                raise FlagError("unknown flag: %s" % s.partition("=")[0])
            given = s[:dashes] + name
            if f.boolean and not eq:
                value = f.const
            else:
                if not eq:
                    if not args:
                        raise FlagError("flag needs a value: %s" % given)
                    value = args.pop(0)
                try:
                    value = f.convert(value)
                except Exception as e:            # an extension's type may raise anything
                    raise FlagError("invalid value %r for %s: %s" % (value, given, e)) from None
            if f.choices is not None and value not in f.choices:
                raise FlagError("invalid value %r for %s (one of: %s)" % (
                    value, given, ", ".join(map(str, f.choices))))
            if f.append:
                getattr(ns, f.dest).append(value)
            else:
                setattr(ns, f.dest, value)
            seen.add(f.dest)
        missing = [f.describe() for f in self._flags if f.required and f.dest not in seen]
        if missing:
            raise FlagError("missing required flag: %s" % ", ".join(missing))
        return ns, positional + args

    def usage(self, synopsis=""):
        """The help text: a synopsis, the description, then `flags_help`."""
        lines = ["usage: %s%s" % (self.prog, " " + synopsis if synopsis else "")]
        if self.description:
            lines += [""] + _wrap(self.description, 0)
        lines += ["", "flags (-name or --name; a value as -name=value or -name value;",
                  "a boolean as -name or -name=false):"]
        return "\n".join(lines) + "\n" + self.flags_help()

    def flags_help(self):
        """Each flag with its help and default, but those whose help is
        SUPPRESS (as in argparse)."""
        lines = []
        for f in self._flags:
            if f.help == SUPPRESS:
                continue
            head = "  " + ", ".join("-" * min(len(n), 2) + n for n in f.names)
            if f.metavar:
                head += ("[=%s]" if f.boolean else " %s") % f.metavar
            text = f.help or ""
            if f.default not in (None, "", [], False) and "default" not in text:
                default = str(f.default).lower() if isinstance(f.default, bool) else f.default
                text += "%s(default %s)" % (" " if text else "", default)
            body = _wrap(text, _INDENT) if text else []
            if body and len(head) < _INDENT - 1:
                lines.append(head.ljust(_INDENT) + body.pop(0).lstrip())
            else:
                lines.append(head)
            lines += body
        return "".join(line + "\n" for line in lines)


SUPPRESS = "==SUPPRESS=="         # argparse's value: a flag left out of the usage
_INDENT, _WIDTH = 26, 79


def _wrap(text, indent):
    """`text` in lines of at most _WIDTH columns, each indented by `indent`;
    a blank line between paragraphs stays."""
    lines = []
    for paragraph in text.split("\n\n"):
        if lines:
            lines.append("")
        line = ""
        for word in paragraph.split():
            if line and indent + len(line) + 1 + len(word) > _WIDTH:
                lines.append(" " * indent + line)
                line = word
            else:
                line = line + " " + word if line else word
        lines.append(" " * indent + line)
    return lines


class Namespace:
    """The parsed flags, as attributes (like argparse.Namespace)."""

    def __repr__(self):
        return "Namespace(%s)" % ", ".join("%s=%r" % kv for kv in sorted(vars(self).items()))
