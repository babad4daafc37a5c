"""Pull one paste-ready DERP map out of `tinyderp derpmap` output.

usage: derpmap_snippet.py FILE yaml|insecure-json

yaml          the headscale YAML section meant for derp.paths, verbatim
insecure-json the policy-file section with InsecureForTests, turned into a
              standalone DERPMap JSON document (what derp.urls serves)

Exits 1 with a message when the section is missing or does not parse, so
run.sh can report that the printed snippet itself is broken.
"""
import json
import re
import sys

path, kind = sys.argv[1], sys.argv[2]
text = open(path).read()
# Sections start with a line "== N. title ==".
parts = re.split(r"^== \d+\. ", text, flags=re.M)[1:]


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


if kind == "yaml":
    for part in parts:
        title, _, body = part.partition("\n")
        if "derp.paths" in title:
            lines = body.splitlines()
            start = next((i for i, l in enumerate(lines) if l.startswith(("#", "regions:"))), None)
            if start is None:
                fail("derp.paths section has no YAML document")
            print("\n".join(lines[start:]).rstrip())
            sys.exit(0)
    fail("no derp.paths section in tinyderp derpmap output")
elif kind == "insecure-json":
    for part in parts:
        title, _, body = part.partition("\n")
        if '"InsecureForTests": true' in body and '"derpMap"' in body:
            frag = body[body.index('"derpMap"'):].strip()
            try:
                doc = json.loads("{" + frag + "}")
            except ValueError as e:
                fail("policy snippet is not valid JSON inside { }: %s" % e)
            print(json.dumps(doc["derpMap"], indent=1))
            sys.exit(0)
    fail("no InsecureForTests policy section in tinyderp derpmap output")
else:
    fail("unknown kind " + kind)
