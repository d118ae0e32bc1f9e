#!/usr/bin/env python3
"""Writes control-plane/src/kube/protobuf_tables.rs: the field tables the Kubernetes API's
protobuf decoder (control-plane/src/kube/protobuf.rs) reads request bodies with.

Kubernetes' generated.proto files give each message's fields (number, wire type, message
type); its types.go files give what the JSON encoding of the same field is (its JSON name,
whether it is a pointer, whether it is `omitempty`), which the decoder needs to produce
the JSON kubectl would have sent. Run it on checkouts of kubernetes/api and
kubernetes/apimachinery:

    scripts/kube-proto-tables.py API_DIR APIMACHINERY_DIR [API_COMMIT MACHINERY_COMMIT] \
        > control-plane/src/kube/protobuf_tables.rs
"""

import re
import sys

API, MACHINERY = sys.argv[1], sys.argv[2]
# The commits they are at, for the header.
COMMITS = sys.argv[3:5] if len(sys.argv) >= 5 else ["?", "?"]

# (proto file, Go file(s), proto package)
SOURCES = [
    (f"{API}/core/v1/generated.proto", [f"{API}/core/v1/types.go"], "k8s.io.api.core.v1"),
    (f"{API}/apps/v1/generated.proto", [f"{API}/apps/v1/types.go"], "k8s.io.api.apps.v1"),
    (f"{API}/policy/v1/generated.proto", [f"{API}/policy/v1/types.go"], "k8s.io.api.policy.v1"),
    (f"{API}/policy/v1beta1/generated.proto", [f"{API}/policy/v1beta1/types.go"],
     "k8s.io.api.policy.v1beta1"),
    (f"{API}/autoscaling/v1/generated.proto", [f"{API}/autoscaling/v1/types.go"],
     "k8s.io.api.autoscaling.v1"),
    (f"{MACHINERY}/pkg/apis/meta/v1/generated.proto", [f"{MACHINERY}/pkg/apis/meta/v1/types.go"],
     "k8s.io.apimachinery.pkg.apis.meta.v1"),
    (f"{MACHINERY}/pkg/runtime/generated.proto", [], "k8s.io.apimachinery.pkg.runtime"),
    (f"{MACHINERY}/pkg/util/intstr/generated.proto", [], "k8s.io.apimachinery.pkg.util.intstr"),
    (f"{MACHINERY}/pkg/api/resource/generated.proto", [], "k8s.io.apimachinery.pkg.api.resource"),
]

# The messages a request body may be, by the typeMeta that names them.
ROOTS = [
    ("v1", "Namespace", "k8s.io.api.core.v1.Namespace"),
    ("v1", "Pod", "k8s.io.api.core.v1.Pod"),
    ("v1", "Node", "k8s.io.api.core.v1.Node"),
    ("v1", "Event", "k8s.io.api.core.v1.Event"),
    ("apps/v1", "Deployment", "k8s.io.api.apps.v1.Deployment"),
    ("policy/v1", "Eviction", "k8s.io.api.policy.v1.Eviction"),
    ("policy/v1beta1", "Eviction", "k8s.io.api.policy.v1beta1.Eviction"),
    ("autoscaling/v1", "Scale", "k8s.io.api.autoscaling.v1.Scale"),
    ("meta.k8s.io/v1", "DeleteOptions", "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions"),
]

# Messages whose JSON form is not an object of their fields.
SPECIAL = {
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "RawJson",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "RawJson",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "Quantity",
}
SCALARS = {"string": "String", "bytes": "Bytes", "bool": "Bool", "int32": "Int32",
           "int64": "Int64", "double": "Double"}

FIELD = re.compile(r"^\s*(optional|repeated)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;")
MAP = re.compile(r"^\s*map<\s*(\w+)\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;")
GO_FIELD = re.compile(r'^\s*(?:\w+\s+)?(\S+)\s+`[^`]*json:"([^"]*)"[^`]*protobuf:"\w+,(\d+),')

messages = {}  # full name -> list of (number, proto name, shape, type)
go = {}  # (package, message, number) -> (json name, pointer, omitempty)

for proto, gofiles, package in SOURCES:
    current = None
    for line in open(proto):
        m = re.match(r"^message (\w+) \{", line)
        if m:
            current = f"{package}.{m.group(1)}"
            messages[current] = []
            continue
        if line.startswith("}"):
            current = None
            continue
        if current is None:
            continue
        m = MAP.match(line)
        if m:
            assert m.group(1) == "string", line
            messages[current].append((int(m.group(4)), m.group(3), "map", m.group(2), package))
            continue
        m = FIELD.match(line)
        if m:
            shape = "repeated" if m.group(1) == "repeated" else "single"
            messages[current].append((int(m.group(4)), m.group(3), shape, m.group(2), package))
    for gofile in gofiles:
        struct = None
        for line in open(gofile):
            m = re.match(r"^type (\w+) struct \{", line)
            if m:
                struct = m.group(1)
                continue
            if line.startswith("}"):
                struct = None
                continue
            m = GO_FIELD.match(line) if struct else None
            if m:
                name, *options = m.group(2).split(",")
                go[(package, struct, int(m.group(3)))] = (
                    name, m.group(1).startswith("*"), "omitempty" in options)


def resolve(type_name, package):
    if type_name in SCALARS:
        return type_name
    if type_name.startswith("."):
        return type_name[1:]
    return f"{package}.{type_name}"


# The messages reachable from the roots, in a stable order.
order, seen, todo = [], set(), [full for _, _, full in ROOTS]
while todo:
    full = todo.pop(0)
    if full in seen:
        continue
    seen.add(full)
    order.append(full)
    if full in SPECIAL:
        continue
    for _, _, _, type_name, package in messages[full]:
        target = resolve(type_name, package)
        if target not in SCALARS:
            todo.append(target)
index = {full: i for i, full in enumerate(order)}


def rust_type(type_name, package):
    target = resolve(type_name, package)
    if target in SCALARS:
        return f"Type::{SCALARS[target]}"
    if target in SPECIAL:
        return f"Type::{SPECIAL[target]}"
    return f"Type::Message({index[target]})"


out = []
out.append("// @generated by scripts/kube-proto-tables.py from kubernetes/api "
           f"{COMMITS[0]} and kubernetes/apimachinery {COMMITS[1]}")
out.append("// (generated.proto for the wire, types.go for the JSON). Do not edit; run the script again.")
out.append("")
out.append("use super::protobuf::{Field, Message, Shape, Type};")
out.append("")
out.append("/// The messages a request body may be: (apiVersion, kind, message).")
out.append(f"pub(super) static ROOTS: [(&str, &str, usize); {len(ROOTS)}] = [")
for version, kind, full in ROOTS:
    out.append(f'    ("{version}", "{kind}", {index[full]}),')
out.append("];")
out.append("")
out.append(f"pub(super) static MESSAGES: [Message; {len(order)}] = [")
for full in order:
    short = full.rsplit(".", 1)[1]
    package = full.rsplit(".", 1)[0]
    out.append("    Message {")
    out.append(f'        name: "{short}",')
    if full in SPECIAL:
        out.append("        fields: &[],")
        out.append("    },")
        continue
    out.append("        fields: &[")
    for number, name, shape, type_name, field_package in sorted(messages[full]):
        json_name, pointer, omitempty = go.get((package, short, number), (name, False, True))
        # An embedded struct's JSON is `,inline`: its fields are the parent's (name "").
        rust_shape = {"single": "Shape::Single", "repeated": "Shape::Repeated",
                      "map": "Shape::Map"}[shape]
        out.append(
            f'            Field {{ number: {number}, name: "{json_name}", shape: {rust_shape}, '
            f"ty: {rust_type(type_name, field_package)}, pointer: {str(pointer).lower()}, "
            f"omitempty: {str(omitempty).lower()} }},")
    out.append("        ],")
    out.append("    },")
out.append("];")
print("\n".join(out))
