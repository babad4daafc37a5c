"""Test model of OpenWrt's libuci file parser and of ubox's validate_data datatypes.

Used by the model `uci` and `validate_data` commands in this directory so the init
script under test sees what it would see on a router: `uci -S -n export` output that
functions.sh evaluates, and validate_data's shell assignments, exit codes and stderr
lines. Written for tests/package from the behaviour of libuci and ubox/validate (the
C sources are the reference; this is not a translation of them).
"""

import ipaddress
import os
import re
import stat
import zlib

NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")


class UciError(Exception):
    """A parse or lookup error, reported like uci does."""


class Section:
    """One `config TYPE ['NAME']` block; options map to str or list[str]."""

    def __init__(self, stype, name, anonymous):
        self.type = stype
        self.name = name
        self.anonymous = anonymous
        self.options = {}
        self.order = []

    def set(self, key, value, is_list):
        if key not in self.options:
            self.order.append(key)
        if is_list:
            cur = self.options.get(key)
            if not isinstance(cur, list):
                cur = []
            cur.append(value)
            self.options[key] = cur
        else:
            self.options[key] = value


def _tokens(line, lineno):
    """Split one line into words: '...' literal, "..." and bare words with \\ escapes,
    adjacent parts glued, # starts a comment outside quotes."""
    words = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n or line[i] == "#":
            break
        word = []
        while i < n and line[i] not in " \t":
            c = line[i]
            if c == "'":
                j = line.find("'", i + 1)
                if j < 0:
                    raise UciError(f"unterminated ' at line {lineno}")
                word.append(line[i + 1 : j])
                i = j + 1
            elif c == '"':
                i += 1
                while True:
                    if i >= n:
                        raise UciError(f'unterminated " at line {lineno}')
                    if line[i] == "\\" and i + 1 < n:
                        word.append(line[i + 1])
                        i += 2
                    elif line[i] == '"':
                        i += 1
                        break
                    else:
                        word.append(line[i])
                        i += 1
            elif c == "\\" and i + 1 < n:
                word.append(line[i + 1])
                i += 2
            elif c == "#":
                break
            else:
                word.append(c)
                i += 1
        words.append("".join(word))
        if i < n and line[i] == "#":
            break
    return words


def parse(text, package):
    """Parse a UCI file into a list of Sections; anonymous ones get cfgXXYYYY names."""
    sections = []
    cur = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        words = _tokens(raw, lineno)
        if not words:
            continue
        kw = words[0]
        if kw == "package":
            continue
        if kw == "config":
            if len(words) < 2 or len(words) > 3 or not NAME_RE.match(words[1]):
                raise UciError(f"invalid section at line {lineno}")
            if len(words) == 3:
                if not NAME_RE.match(words[2]):
                    raise UciError(f"invalid section name at line {lineno}")
                cur = Section(words[1], words[2], False)
            else:
                cur = Section(words[1], None, True)
            sections.append(cur)
        elif kw in ("option", "list"):
            if cur is None or len(words) != 3 or not NAME_RE.match(words[1]):
                raise UciError(f"invalid {kw} at line {lineno}")
            cur.set(words[1], words[2], kw == "list")
        else:
            raise UciError(f"invalid command '{kw}' at line {lineno}")
    for idx, sec in enumerate(sections):
        if sec.anonymous:
            digest = zlib.crc32(f"{package}.{sec.type}.{idx}".encode()) & 0xFFFF
            sec.name = f"cfg{idx:02x}{digest:04x}"
    return sections


def load(package, confdir=None):
    confdir = confdir or os.environ.get("UCI_CONFIG_DIR") or "/etc/config"
    path = os.path.join(confdir, package)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise UciError("Entry not found") from e
    return parse(text, package)


def find_section(sections, ref):
    """By name, or @type[index] with negative indexes from the end."""
    m = re.match(r"^@([A-Za-z0-9_]+)\[(-?\d+)\]$", ref)
    if m:
        of_type = [s for s in sections if s.type == m.group(1)]
        idx = int(m.group(2))
        try:
            return of_type[idx]
        except IndexError:
            return None
    for s in sections:
        if s.name == ref:
            return s
    return None


def shell_quote(value):
    return "'" + value.replace("'", "'\\''") + "'"


# ---- validate_data datatypes ------------------------------------------------------

DT_INVALID, DT_BOOL, DT_NUMBER, DT_STRING = 0, 1, 2, 3


class DtSyntaxError(Exception):
    pass


def _c_strtol(text, base=0, unsigned=False, bits=32):
    """(value, rest) like C strtol/strtoul: leading space, sign, 0x/0 prefixes; value
    wraps to a C int as the validate code stores it."""
    s = text.lstrip(" \t\n\r\f\v")
    i = 0
    neg = False
    if i < len(s) and s[i] in "+-":
        neg = s[i] == "-"
        i += 1
    b = base
    if b in (0, 16) and s[i : i + 2].lower() == "0x" and i + 2 < len(s) and s[i + 2] in "0123456789abcdefABCDEF":
        i += 2
        b = 16
    elif b == 0:
        b = 8 if s[i : i + 1] == "0" else 10
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"[:b]
    j = i
    while j < len(s) and s[j].lower() in digits:
        j += 1
    if j == i:
        return None, text
    val = int(s[i:j], b)
    if neg:
        val = -val
    val &= (1 << bits) - 1
    if val >= 1 << (bits - 1):
        val -= 1 << bits
    return val, s[j:]


def _full_int(text, base=0):
    v, rest = _c_strtol(text, base)
    return v if v is not None and rest == "" else None


def _c_strtod(text):
    # C's strtod also reads hexadecimal floats ("0x10", "0x1.8p3"), as ubox's validate_data
    # does through it.
    h = re.match(r"^[ \t\n\r\f\v]*([+-]?)0x([0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)(p[+-]?\d+)?", text, re.I)
    if h:
        return float.fromhex(h.group(1) + "0x" + h.group(2) + (h.group(3) or "")), text[h.end() :]
    m = re.match(r"^[ \t\n\r\f\v]*[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|nan)", text, re.I)
    if not m:
        return None, text
    return float(m.group(0)), text[m.end() :]


def _ip4(v):
    try:
        ipaddress.IPv4Address(v)
        return True
    except ValueError:
        return False


def _ip6(v):
    if "%" in v:
        return False
    try:
        ipaddress.IPv6Address(v)
        return True
    except ValueError:
        return False


def _cidr(v, is_v4):
    addr, sep, plen = v.partition("/")
    if sep:
        n, rest = _c_strtol(plen, 10)
        if rest != "" or n is None or n > (32 if is_v4 else 128) or n < 0:
            return False
    return _ip4(addr) if is_v4 else _ip6(addr)


def _hostname(v):
    last = 0
    for i, c in enumerate(v):
        if c == ".":
            if i - last == 0 or i - last > 63:
                return False
            last = i + 1
        elif not (c.isascii() and (c.isalnum() or c in "_-")):
            return False
    return 0 < len(v) - last <= 255


def _uciname(v):
    return all(c.isascii() and (c.isalnum() or c == "_") for c in v)


def _port(v):
    n, rest = _c_strtol(v, 10, unsigned=True)
    return n is not None and rest == "" and n <= 65535


class _Fn:
    def __init__(self, name, args):
        self.name = name
        self.args = args


def _parse_args(code):
    """Split a comma list at depth 0, honouring quotes and backslashes."""
    parts, depth, cur, quote, esc = [], 0, [], None, False
    for c in code:
        if esc:
            cur.append(c)
            esc = False
            continue
        if c == "\\":
            cur.append(c)
            esc = True
            continue
        if quote:
            cur.append(c)
            if c == quote:
                quote = None
            continue
        if c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth <= 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(c)
    parts.append("".join(cur))
    return [p for p in parts if p.strip() != ""]


def _parse(code):
    code = code.strip()
    num, rest = _c_strtod(code)
    if num is not None:
        if rest.strip() != "":
            raise DtSyntaxError("expected ',' after literal")
        return ("num", num)
    if code[:1] in ("'", '"'):
        q = code[0]
        i, out, esc = 1, [], False
        while i < len(code):
            c = code[i]
            if esc:
                out.append(c)
                esc = False
            elif c == "\\":
                esc = True
            elif c == q:
                if code[i + 1 :].strip():
                    raise DtSyntaxError("expected ',' after literal")
                return ("str", "".join(out))
            else:
                out.append(c)
            i += 1
        raise DtSyntaxError("unterminated string")
    m = re.match(r"^[A-Za-z0-9_]+", code)
    if not m:
        raise DtSyntaxError("unexpected EOF")
    name = m.group(0)
    if name not in _FUNCS:
        raise DtSyntaxError("unrecognized function")
    rest = code[m.end() :].strip()
    if rest == "":
        return ("fn", _Fn(name, []))
    if not rest.startswith("(") or not rest.endswith(")"):
        raise DtSyntaxError("expected '(' or EOF after function label")
    return ("fn", _Fn(name, [_parse(a) for a in _parse_args(rest[1:-1])]))


class _State:
    def __init__(self, value):
        self.value = value
        self.valtype = DT_INVALID


def _nums(args):
    return [a[1] for a in args if a[0] == "num"]


def _step(node, st):
    kind, val = node
    if kind == "num":
        n, rest = _c_strtod(st.value)
        ok = n is not None and rest == "" and n == val
        if ok:
            st.valtype = DT_NUMBER
        return ok
    if kind == "str":
        ok = st.value == val
        if ok:
            st.valtype = DT_STRING
        return ok
    fn = val
    valtype, impl = _FUNCS[fn.name]
    ok = impl(st, fn.args)
    if ok and valtype != DT_INVALID:
        st.valtype = valtype
    return ok


def _f_or(st, args):
    return any(_step(a, st) for a in args)


def _f_and(st, args):
    return all(_step(a, st) for a in args)


def _f_not(st, args):
    return bool(args) and not _step(args[0], st)


def _f_neg(st, args):
    if not args:
        return False
    saved = st.value
    if st.value.startswith("!"):
        st.value = st.value[1:].lstrip()
    ok = _step(args[0], st)
    st.value = saved
    return ok


def _f_list(st, args):
    if not args:
        return False
    saved = st.value
    ok = True
    for word in saved.split():
        st.value = word
        if not _step(args[0], st):
            ok = False
            break
    st.value = saved
    return ok


def _f_cmp(pred):
    def impl(st, args):
        nums = _nums(args)
        need = pred.__code__.co_argcount - 1
        if len(nums) < need:
            return False
        n = _full_int(st.value)
        return n is not None and pred(n, *[int(x) for x in nums[:need]])

    return impl


def _f_len(pred):
    def impl(st, args):
        nums = _nums(args)
        need = pred.__code__.co_argcount - 1
        if len(nums) < need:
            return False
        return pred(len(st.value.encode()), *[int(x) for x in nums[:need]])

    return impl


def _f_integer(st, args, unsigned=False):
    v = st.value
    if not v or not (v[0] in "0123456789abcdefABCDEF" or (not unsigned and v[0] == "-")):
        return False
    nums = _nums(args)
    base = int(nums[0]) if nums else 0
    n, rest = _c_strtol(v, base)
    return n is not None and rest == ""


def _f_float(st, args, unsigned=False):
    n, rest = _c_strtod(st.value)
    return n is not None and rest == "" and (not unsigned or int(n) >= 0)


def _f_bool(st, args):
    return st.value.lower() in ("0", "off", "false", "no", "disabled", "1", "on", "true", "yes", "enabled")


def _f_string(st, args):
    nums = _nums(args)
    n = len(st.value.encode())
    if len(nums) >= 1 and n < nums[0]:
        return False
    if len(nums) >= 2 and n > nums[1]:
        return False
    return True


def _f_hexstring(st, args):
    v = st.value
    return len(v) % 2 == 0 and _f_string(st, args) and all(c in "0123456789abcdefABCDEF" for c in v)


def _f_portrange(st, args):
    n, rest = _c_strtol(st.value, 10)
    if n is None or not rest.startswith("-"):
        return _port(st.value)
    m, rest2 = _c_strtol(rest[1:], 10)
    return m is not None and rest2 == "" and n <= 65535 and m <= 65535 and n <= m


def _f_regex(st, args):
    if not args or args[0][0] != "str":
        return False
    try:
        return re.fullmatch(args[0][1], st.value) is not None
    except re.error:
        return False


def _stat_is(st_value, test):
    try:
        return test(os.stat(st_value).st_mode)
    except OSError:
        return False


_FUNCS = {
    "or": (DT_INVALID, _f_or),
    "and": (DT_INVALID, _f_and),
    "not": (DT_INVALID, _f_not),
    "neg": (DT_INVALID, _f_neg),
    "list": (DT_INVALID, _f_list),
    "min": (DT_NUMBER, _f_cmp(lambda n, lo: n >= lo)),
    "max": (DT_NUMBER, _f_cmp(lambda n, hi: n <= hi)),
    "range": (DT_NUMBER, _f_cmp(lambda n, lo, hi: lo <= n <= hi)),
    "minlength": (DT_STRING, _f_len(lambda n, lo: n >= lo)),
    "maxlength": (DT_STRING, _f_len(lambda n, hi: n <= hi)),
    "rangelength": (DT_STRING, _f_len(lambda n, lo, hi: lo <= n <= hi)),
    "integer": (DT_NUMBER, lambda st, a: _f_integer(st, a)),
    "uinteger": (DT_NUMBER, lambda st, a: _f_integer(st, a, unsigned=True)),
    "float": (DT_NUMBER, lambda st, a: _f_float(st, a)),
    "ufloat": (DT_NUMBER, lambda st, a: _f_float(st, a, unsigned=True)),
    "bool": (DT_BOOL, _f_bool),
    "string": (DT_STRING, _f_string),
    "hexstring": (DT_STRING, _f_hexstring),
    "ip4addr": (DT_STRING, lambda st, a: _ip4(st.value)),
    "ip6addr": (DT_STRING, lambda st, a: _ip6(st.value)),
    "ipaddr": (DT_STRING, lambda st, a: _ip4(st.value) or _ip6(st.value)),
    "cidr4": (DT_STRING, lambda st, a: _cidr(st.value, True)),
    "cidr6": (DT_STRING, lambda st, a: _cidr(st.value, False)),
    "cidr": (DT_STRING, lambda st, a: _cidr(st.value, True) or _cidr(st.value, False)),
    "port": (DT_NUMBER, lambda st, a: _port(st.value)),
    "portrange": (DT_STRING, _f_portrange),
    "uciname": (DT_STRING, lambda st, a: _uciname(st.value)),
    "hostname": (DT_STRING, lambda st, a: _hostname(st.value)),
    "host": (DT_STRING, lambda st, a: _hostname(st.value) or _ip4(st.value) or _ip6(st.value)),
    "network": (
        DT_STRING,
        lambda st, a: _uciname(st.value) or _hostname(st.value) or _ip4(st.value) or _ip6(st.value),
    ),
    "directory": (DT_STRING, lambda st, a: _stat_is(st.value, stat.S_ISDIR)),
    "file": (DT_STRING, lambda st, a: _stat_is(st.value, stat.S_ISREG)),
    "regex": (DT_STRING, _f_regex),
}


def dt_parse(code, value):
    """The datatype of `value` under expression `code`, DT_INVALID when it fails."""
    if not value:
        return DT_INVALID
    try:
        args = [_parse(a) for a in _parse_args(code)]
    except DtSyntaxError as e:
        print(f"Syntax error, {e}")
        return DT_INVALID
    st = _State(value)
    # The whole expression is an implicit or() of its top-level comma list.
    if _f_or(st, args):
        return st.valtype
    return DT_INVALID
