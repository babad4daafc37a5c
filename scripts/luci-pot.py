#!/usr/bin/env python3
"""The translation template of luci-app-tinyderp, generated from its sources.

LuCI translates what the views pass to _() (and the menu titles and the ACL description)
with gettext catalogues built from po/<lang>/tinyderp.po; po/templates/tinyderp.pot is the
list of those strings that translators start from. LuCI's own scanner (build/i18n-scan.pl)
is not in the source snapshot the tests use, so this script collects the same strings:
string literals passed to _() in the JavaScript under htdocs/, the "title" of each menu.d
entry and the "description" of the acl.d grant.

    scripts/luci-pot.py           rewrite the template
    scripts/luci-pot.py --check   exit 1 (and say so) when the template is not current
"""

import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "openwrt", "luci-app-tinyderp")
POT = os.path.join(APP, "po", "templates", "tinyderp.pot")

# _('...') or _("..."): one string literal, the first argument.
CALL = re.compile(r"""\b_\(\s*(?P<q>['"])(?P<s>(?:\\.|(?!(?P=q)).)*)(?P=q)\s*[,)]""", re.S)
JS_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}


def js_unescape(text):
    return re.sub(r"\\(.)", lambda m: JS_ESCAPES.get(m.group(1), m.group(1)), text)


def po_quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") \
        .replace("\t", "\\t") + '"'


def collect():
    """{msgid: [where, ...]} in the order first seen, files sorted."""
    found = {}

    def add(msgid, where):
        if msgid:
            found.setdefault(msgid, []).append(where)

    for base, _dirs, files in sorted(os.walk(os.path.join(APP, "htdocs"))):
        for name in sorted(files):
            if not name.endswith(".js"):
                continue
            path = os.path.join(base, name)
            text = open(path, encoding="utf-8").read()
            rel = os.path.relpath(path, APP)
            for m in CALL.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                add(js_unescape(m.group("s")), f"{rel}:{line}")
    menu_dir = os.path.join(APP, "root", "usr", "share", "luci", "menu.d")
    for name in sorted(os.listdir(menu_dir)):
        rel = os.path.relpath(os.path.join(menu_dir, name), APP)
        for entry in json.load(open(os.path.join(menu_dir, name))).values():
            add(entry.get("title", ""), rel)
    acl_dir = os.path.join(APP, "root", "usr", "share", "rpcd", "acl.d")
    for name in sorted(os.listdir(acl_dir)):
        rel = os.path.relpath(os.path.join(acl_dir, name), APP)
        for grant in json.load(open(os.path.join(acl_dir, name))).values():
            add(grant.get("description", ""), rel)
    return found


def render(found):
    out = ['msgid ""', 'msgstr "Content-Type: text/plain; charset=UTF-8"', ""]
    for msgid in sorted(found):
        out.append("#: " + " ".join(dict.fromkeys(found[msgid])))
        out.append("msgid " + po_quote(msgid))
        out.append('msgstr ""')
        out.append("")
    return "\n".join(out)


def main():
    text = render(collect())
    if sys.argv[1:] == ["--check"]:
        current = open(POT, encoding="utf-8").read() if os.path.exists(POT) else ""
        if current != text:
            print(f"{os.path.relpath(POT, ROOT)} is not current: run scripts/luci-pot.py")
            return 1
        return 0
    if sys.argv[1:]:
        print(__doc__.strip().splitlines()[-2:], file=sys.stderr)
        return 64
    os.makedirs(os.path.dirname(POT), exist_ok=True)
    with open(POT, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
