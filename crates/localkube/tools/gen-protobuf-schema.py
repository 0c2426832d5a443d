#!/usr/bin/env python3
"""Generates crates/localkube/src/protobuf/schema.txt: the field tables localkube uses to
decode Kubernetes protobuf request bodies into JSON.

Field numbers and types come from the `k8s-pb` crate (prost types generated from upstream's
generated.proto files); the JSON names from `k8s-openapi` (its serde keys), since prost's
snake_case names lose the API's casing (`nonResourceURLs` -> `non_resource_ur_ls`).

    python3 crates/localkube/tools/gen-protobuf-schema.py \
        ~/.cargo/registry/src/*/k8s-pb-0.9.0 ~/.cargo/registry/src/*/k8s-openapi-0.29.0/src/v1_37 \
        > crates/localkube/src/protobuf/schema.txt

Output lines:
    K <apiVersion> <kind> <message>         a kind and its message
    M <message>                             a message; its fields follow
    F <tag> <json name> <type> [r]          type: s b i32 i64 f y m:<msg> map:s map:y map:m:<msg>
                                            (r: repeated)
"""
import os
import re
import sys

pb_root = os.path.join(sys.argv[1], "src")
oa_root = sys.argv[2]

# JSON keys of k8s-openapi, per struct file and globally, keyed by letters+digits lowercased.
def norm(s):
    return re.sub(r"[^a-z0-9]", "", s.lower())

per_file = {}
global_keys = {}
key_re = re.compile(r'"([^"]+)" => Field::Key_')
for dirpath, _, files in os.walk(oa_root):
    for f in files:
        if not f.endswith(".rs"):
            continue
        text = open(os.path.join(dirpath, f)).read()
        keys = {}
        for k in key_re.findall(text):
            keys[norm(k)] = k
            global_keys.setdefault(norm(k), k)
        rel = os.path.relpath(os.path.join(dirpath, f[:-3]), oa_root)
        per_file[rel.replace(os.sep, "/")] = keys


def snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def camel(s):
    parts = s.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


attr_re = re.compile(r'#\[prost\(([^)]*)\)\]')
field_re = re.compile(r'pub (r#)?(\w+):\s*(.*)', re.S)

kinds = []
messages = []
for dirpath, _, files in os.walk(pb_root):
    if "mod.rs" not in files:
        continue
    module = os.path.relpath(dirpath, pb_root).replace(os.sep, "/")
    if module.startswith("metrics") or "testapigroup" in module or module == ".":
        continue
    text = open(os.path.join(dirpath, "mod.rs")).read()
    for m in re.finditer(r'impl crate::Resource for (\w+) \{(.*?)\n\}', text, re.S):
        body = m.group(2)
        av = re.search(r'API_VERSION: &\'static str = "([^"]*)"', body).group(1)
        kind = re.search(r'KIND: &\'static str = "([^"]*)"', body).group(1)
        kinds.append((av, kind, f"{module}/{m.group(1)}"))
    for m in re.finditer(r'\npub struct (\w+) \{\}', text):
        messages.append((f"{module}/{m.group(1)}", []))
    for m in re.finditer(r'\npub struct (\w+) \{\n(.*?)\n\}', text, re.S):
        name, body = m.group(1), m.group(2)
        body = "\n".join(l for l in body.split("\n") if not l.strip().startswith("///"))
        oa_keys = per_file.get(f"{module}/{snake(name)}", {})
        fields = []
        chunks = attr_re.split(body)
        # chunks: [pre, attr1, rest1, attr2, rest2, ...]
        for attr, rest in zip(chunks[1::2], chunks[2::2]):
            fm = field_re.search(rest)
            fname, ftype = fm.group(2), re.sub(r"\s+", "", fm.group(3)).rstrip(",")
            tag = re.search(r'tag = "(\d+)"', attr).group(1)

            def resolve(path):
                path = path.replace("::core::option::Option<", "").replace("::prost::alloc::boxed::Box<", "")
                segs = [s for s in path.rstrip(",").split("::") if s]
                mod = module.split("/")
                while segs and segs[0] == "super":
                    mod.pop()
                    segs.pop(0)
                return "/".join(mod + segs)

            repeated = "repeated" in attr
            if attr.startswith("btree_map"):
                vt = re.search(r'btree_map = "string, (\w+)"', attr).group(1)
                if vt == "string":
                    t = "map:s"
                elif vt == "bytes":
                    t = "map:y"
                else:
                    inner = re.search(r"BTreeMap<::prost::alloc::string::String,(.*)>$", ftype).group(1)
                    t = "map:m:" + resolve(inner)
            else:
                kind = attr.split(",")[0].strip()
                if kind == "message":
                    inner = ftype
                    inner = re.sub(r"^::prost::alloc::vec::Vec<(.*)>$", r"\1", inner)
                    inner = re.sub(r"^::core::option::Option<(.*)>$", r"\1", inner)
                    inner = re.sub(r"^::prost::alloc::boxed::Box<(.*)>$", r"\1", inner)
                    t = "m:" + resolve(inner)
                elif kind == "string":
                    t = "s"
                elif kind == "bool":
                    t = "b"
                elif kind in ("int32", "int64"):
                    t = "i32" if kind == "int32" else "i64"
                elif kind == "double":
                    t = "f"
                elif kind.startswith("bytes"):
                    t = "y"
                else:
                    raise SystemExit(f"unknown prost kind {attr} in {module}/{name}")
            key = norm(fname)
            json = oa_keys.get(key) or (None if oa_keys else global_keys.get(key))
            if json is None and oa_keys and t.startswith("m:") and not repeated:
                # A Go struct embedded with `json:",inline"`: its fields sit in the parent.
                json = "-"
            if json is None:
                json = camel(fname)
                print(f"no k8s-openapi key for {module}/{name}.{fname}; using {json}", file=sys.stderr)
            fields.append((tag, json, t, repeated))
        messages.append((f"{module}/{name}", fields))

print("# Generated by crates/localkube/tools/gen-protobuf-schema.py from k8s-pb and k8s-openapi; do not edit.")
for av, kind, msg in sorted(kinds):
    print(f"K {av} {kind} {msg}")
for name, fields in sorted(messages):
    print(f"M {name}")
    for tag, json, t, rep in fields:
        print(f"F {tag} {json} {t}{' r' if rep else ''}")
