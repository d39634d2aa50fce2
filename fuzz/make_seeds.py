#!/usr/bin/env python3
"""Writes the small seed corpora in fuzz/seeds/<target>/ from the project's test data
(the conformance dataset and queries, the golden chunk and segment files) plus a few
hand-made inputs. Each seed starts with the mode byte its target reads first.

Inputs that once crashed a target are kept beside them as seeds/<target>/regress_*.

Run from anywhere: python3 fuzz/make_seeds.py
"""
import gzip
import json
import os
import re
import struct
import subprocess
import zlib

FUZZ = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUZZ)
SEEDS = os.path.join(FUZZ, "seeds")
NOW_NS = 1_720_339_200_000_000_000


def crc32c(data: bytes) -> int:
    table = crc32c.table
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


crc32c.table = _table()
assert crc32c(b"123456789") == 0xE3069283


def write(target: str, name: str, data: bytes):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- protobuf helpers -------------------------------------------------------------
def varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(tag: int, data: bytes) -> bytes:
    return varint(tag << 3 | 2) + varint(len(data)) + data


def field_varint(tag: int, n: int) -> bytes:
    return varint(tag << 3) + varint(n)


def field_fixed64(tag: int, n: int) -> bytes:
    return varint(tag << 3 | 1) + struct.pack("<Q", n)


def push_request(streams) -> bytes:
    """streams: [(labels, [(ts_ns, line, [(k, v)])])]"""
    out = b""
    for labels, entries in streams:
        s = field_bytes(1, labels.encode())
        for ts, line, md in entries:
            t = field_varint(1, ts // 1_000_000_000) + field_varint(2, ts % 1_000_000_000)
            e = field_bytes(1, t) + field_bytes(2, line.encode())
            for k, v in md:
                e += field_bytes(3, field_bytes(1, k.encode()) + field_bytes(2, v.encode()))
            s += field_bytes(2, e)
        out += field_bytes(1, s)
    return out


def label_string(stream: dict) -> str:
    return "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in stream.items()) + "}"


# ---- data from the conformance dataset --------------------------------------------
with open(os.path.join(ROOT, "tests", "conformance", "dataset.json")) as f:
    dataset = json.load(f)["streams"]
small_streams = [
    {"stream": s["stream"], "values": s["values"][:3]} for s in dataset[:4]
]
v1_json = json.dumps({"streams": small_streams[:2]}).encode()
legacy_json = json.dumps(
    {
        "streams": [
            {
                "labels": label_string(s["stream"]),
                "entries": [
                    {"ts": "2024-07-07T08:00:0%dZ" % i, "line": v[1]}
                    for i, v in enumerate(s["values"])
                ],
            }
            for s in small_streams[:2]
        ]
    }
).encode()
proto_streams = [
    (
        label_string(s["stream"]),
        [(int(v[0]), v[1], list(v[2].items()) if len(v) > 2 else []) for v in s["values"]],
    )
    for s in small_streams
]
proto = push_request(proto_streams)

# Regenerate everything but the inputs of fixed crashes (regress_*), which stay as seeds.
for dirpath, _, files in os.walk(SEEDS):
    for name in files:
        if not name.startswith("regress_"):
            os.remove(os.path.join(dirpath, name))

# push_protobuf: mode odd = protobuf compressed by the target.
write("push_protobuf", "dataset", b"\x01" + proto)
write("push_protobuf", "one_entry", b"\x01" + push_request([('{app="a"}', [(NOW_NS, "hello", [])])]))
write("push_protobuf", "legacy_path", b"\x03" + push_request([('{app="a", env="p"}', [(NOW_NS, "x", [("trace_id", "1")])])]))

# push_json
write("push_json", "v1", b"\x00" + v1_json)
write("push_json", "legacy", b"\x01" + legacy_json)
write(
    "push_json",
    "v1_metadata",
    b"\x02"
    + json.dumps(
        {"streams": [{"stream": {"app": "a"}, "values": [[str(NOW_NS), "line", {"k": "v"}]]}]}
    ).encode(),
)

# push_gzip: bit 3 JSON, bit 4 compressed by the target, bit 5 zlib wrapper.
write("push_gzip", "gzip_json_as_sent", bytes([0 | 8]) + gzip.compress(v1_json, mtime=0))
write("push_gzip", "zlib_json_as_sent", bytes([2 | 8]) + zlib.compress(v1_json))
raw_deflate = zlib.compressobj(wbits=-15)
write("push_gzip", "deflate_json_as_sent", bytes([2 | 8]) + raw_deflate.compress(v1_json) + raw_deflate.flush())
write("push_gzip", "gzip_json_by_target", bytes([0 | 8 | 16]) + v1_json)
write("push_gzip", "zlib_proto_by_target", bytes([2 | 16 | 32]) + proto)
write("push_gzip", "gzip_proto_by_target", bytes([0 | 16]) + proto)

# push_otlp
kv = lambda k, v: {"key": k, "value": {"stringValue": v}}
otlp_json = json.dumps(
    {
        "resourceLogs": [
            {
                "resource": {"attributes": [kv("service.name", "checkout"), kv("host.name", "h1")]},
                "scopeLogs": [
                    {
                        "scope": {"name": "lib", "version": "1"},
                        "logRecords": [
                            {
                                "timeUnixNano": str(NOW_NS),
                                "severityText": "WARN",
                                "body": {"stringValue": "payment slow"},
                                "attributes": [
                                    kv("user", "u1"),
                                    {"key": "n", "value": {"intValue": "3"}},
                                    {"key": "list", "value": {"arrayValue": {"values": [{"boolValue": True}]}}},
                                ],
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                            }
                        ],
                    }
                ],
            }
        ]
    }
).encode()


def otlp_kv(k, v):
    return field_bytes(1, k.encode()) + field_bytes(2, field_bytes(1, v.encode()))


otlp_record = (
    field_fixed64(1, NOW_NS)
    + field_varint(2, 13)
    + field_bytes(3, b"WARN")
    + field_bytes(5, field_bytes(1, b"payment slow"))
    + field_bytes(6, otlp_kv("user", "u1"))
)
otlp_proto = field_bytes(
    1,
    field_bytes(1, field_bytes(1, otlp_kv("service.name", "checkout")))
    + field_bytes(2, field_bytes(1, field_bytes(1, b"lib")) + field_bytes(2, otlp_record)),
)
write("push_otlp", "json", b"\x01" + otlp_json)
write("push_otlp", "json_gzip", b"\x03" + gzip.compress(otlp_json, mtime=0))
write("push_otlp", "proto", b"\x00" + otlp_proto)
write("push_otlp", "proto_gzip", b"\x02" + gzip.compress(otlp_proto, mtime=0))

# label_string
for i, s in enumerate(
    [label_string(s["stream"]) for s in small_streams[:2]]
    + [
        '{app="api", "k8s.pod"="p-1", env=""}',
        '{a="\\"q\\" \\\\ \\n \\u00e9 \\x41 \\101"}',
        "{}",
        '{service_name="s", level="error", __pattern__="x"}',
        '{a="1",a="2"}',
    ]
):
    write("label_string", f"labels_{i}", s.encode())

# logql_parse: every conformance query, deduplicated.
queries = []
for path in ["tests/conformance/cases.jsonl", "crates/logql/tests/data/conformance_queries.jsonl"]:
    with open(os.path.join(ROOT, path)) as f:
        for line in f:
            case = json.loads(line)
            q = case.get("query") or case.get("params", {}).get("query")
            if q and q not in queries:
                queries.append(q)
for i, q in enumerate(queries):
    write("logql_parse", f"q{i:03}", q.encode())

# chunk_decode: golden files in every mode, and raw blocks wrapped by the target.
data_dir = os.path.join(ROOT, "crates", "chunk", "tests", "data")
for version in ["v1", "v2"]:
    # v1: row-wise blocks only; v2: columnar blocks (JSON lines, metadata, lines kept whole)
    # and a last row-wise block.
    chunk = open(os.path.join(data_dir, f"{version}.chunk"), "rb").read()
    seg = open(os.path.join(data_dir, f"{version}.seg"), "rb").read()
    write("chunk_decode", f"{version}_chunk", b"\x00" + chunk)
    write("chunk_decode", f"{version}_chunk_crc_fixed", b"\x01" + chunk)
    write("chunk_decode", f"{version}_segment", b"\x02" + seg)
    write("chunk_decode", f"{version}_segment_crc_fixed", b"\x03" + seg)


def zigzag(n: int) -> int:
    return ((n << 1) ^ (n >> 63)) & ((1 << 64) - 1)


def raw_block(entries):
    """entries: [(ts, line, [(k, v)])] -> (raw bytes, count, min, max)"""
    text = b"".join(e[1].encode() for e in entries)
    md_text = b"".join(k.encode() + v.encode() for e in entries for k, v in e[2])
    cols = varint(len(entries))
    last = 0
    for i, (ts, _, _) in enumerate(entries):
        cols += varint(zigzag(ts if i == 0 else ts - last))
        last = ts
    for _, line, _ in entries:
        cols += varint(len(line.encode()))
    has_md = any(e[2] for e in entries)
    if has_md:
        for _, _, md in entries:
            cols += varint(len(md))
            for k, v in md:
                cols += varint(len(k.encode())) + varint(len(v.encode()))
    body = text + md_text + cols + struct.pack("<I", len(text + md_text)) + bytes([1 if has_md else 0])
    tss = [e[0] for e in entries]
    return body, len(entries), min(tss), max(tss)


for name, entries in [
    ("block_plain", [(NOW_NS + i, f"line {i}", []) for i in range(4)]),
    ("block_metadata", [(NOW_NS + 5 - i, f"l{i}", [("trace_id", str(i))] if i % 2 else []) for i in range(3)]),
]:
    body, n, lo, hi = raw_block(entries)
    write("chunk_decode", name, b"\x04" + struct.pack("<Iqq", n, lo, hi) + body)


# Columnar raw blocks (chunk version 2, flag COLUMNAR; see crates/chunk/src/columnar.rs):
# lines split into templates (0xff where a value goes) and one column per value slot, each
# column in one of the encodings the decoder reads.
MASK64 = (1 << 64) - 1
VALUE = re.compile(rb'([:=])(\s*)("((?:[^"\\]|\\.)*)"|[A-Za-z0-9._+\-/:]+)')


def pack(w: int, vals) -> bytes:
    acc, bits = 0, 0
    for v in vals:
        acc |= (v & MASK64) << bits
        bits += w
    return acc.to_bytes((bits + 7) // 8, "little") if bits else b""


def int_column(vals, mode=0) -> bytes:
    """mode 0: frame of reference, 1: deltas, 2: dictionary."""
    if mode == 1 and len(vals) >= 2:
        deltas = [b - a for a, b in zip(vals, vals[1:])]
        base = min(deltas)
        w = max(d - base for d in deltas).bit_length()
        return (bytes([1]) + varint(zigzag(vals[0])) + varint(zigzag(base)) + bytes([w])
                + pack(w, [d - base for d in deltas]))
    if mode == 2 and vals:
        d = sorted(set(vals))
        w = (len(d) - 1).bit_length()
        return (bytes([2]) + varint(len(d)) + b"".join(varint(zigzag(v)) for v in d)
                + bytes([w]) + pack(w, [d.index(v) for v in vals]))
    base = min(vals) if vals else 0
    w = max((v - base for v in vals), default=0).bit_length()
    return bytes([0]) + varint(zigzag(base)) + bytes([w]) + pack(w, [v - base for v in vals])


def is_int(v: bytes) -> bool:
    try:
        return str(int(v)).encode() == v and -(1 << 63) <= int(v) < (1 << 63)
    except ValueError:
        return False


def str_column(vals, top=True) -> bytes:
    """The encoding a value column's contents suit best (roughly as the encoder picks)."""
    if vals and all(is_int(v) for v in vals):
        return int_column([int(v) for v in vals], 1 if len(set(vals)) == len(vals) else 2)
    if top and vals and all(len(v) == len(vals[0]) >= 8 and len(v) % 2 == 0
                            and re.fullmatch(rb"[0-9a-f]+", v) for v in vals):
        return bytes([5]) + varint(len(vals[0]) // 2) + b"".join(bytes.fromhex(v.decode()) for v in vals)
    if len(set(vals)) <= 4:
        d = sorted(set(vals))
        w = max(len(d) - 1, 0).bit_length()
        return (bytes([4]) + varint(len(d)) + b"".join(varint(len(v)) + v for v in d)
                + bytes([w]) + pack(w, [d.index(v) for v in vals]))
    parts = [re.fullmatch(rb"(\D*)(\d{1,18})(\D*)", v) for v in vals]
    if top and all(p and is_int(p.group(2)) for p in parts):
        return (bytes([6]) + str_column([p.group(1) for p in parts], False)
                + int_column([int(p.group(2)) for p in parts])
                + str_column([p.group(3) for p in parts], False))
    return bytes([3]) + int_column([len(v) for v in vals]) + varint(sum(map(len, vals))) + b"".join(vals)


def columnar_block(entries):
    """entries: [(ts, line, [(k, v)])] -> (raw bytes, count, min, max)"""
    templates, ids, slots, exceptions = [], [], {}, []
    for _, line, _ in entries:
        line = line.encode()
        matches = list(VALUE.finditer(line))
        if not matches:
            ids.append(None)
            exceptions.append(line)
            continue
        key, values, at = b"", [], 0
        for m in matches:
            start, end = (m.start(4), m.end(4)) if m.group(4) is not None else m.span(3)
            key += line[at:start] + b"\xff"
            values.append(line[start:end])
            at = end
        key += line[at:]
        if key not in templates:
            templates.append(key)
        t = templates.index(key)
        ids.append(t)
        for i, v in enumerate(values):
            slots.setdefault((t, i), []).append(v)
    cols = varint(len(entries))
    last = 0
    for i, (ts, _, _) in enumerate(entries):
        cols += varint(zigzag(ts if i == 0 else ts - last))
        last = ts
    cols += varint(sum(len(e[1].encode()) for e in entries)) + varint(len(templates))
    for key in templates:
        cols += varint(len(key)) + key
    cols += int_column([len(templates) if t is None else t for t in ids])
    cols += int_column([len(x) for x in exceptions])
    for t, key in enumerate(templates):
        for i in range(key.count(b"\xff")):
            cols += str_column(slots[(t, i)])
    has_md = any(e[2] for e in entries)
    if has_md:
        cols += int_column([len(e[2]) for e in entries])
        cols += str_column([k.encode() for e in entries for k, _ in e[2]], False)
        cols += str_column([v.encode() for e in entries for _, v in e[2]], False)
    text = b"".join(exceptions)
    body = text + cols + struct.pack("<I", len(text)) + bytes([2 | (1 if has_md else 0)])
    tss = [e[0] for e in entries]
    return body, len(entries), min(tss), max(tss)


json_lines = [
    (NOW_NS + i * 1000,
     '{"level":"%s","url":"/api/items/%d","status":%d,"ms":%d,"id":"%016x","msg":"caf\\u00e9 \\"%d\\" ✓"}'
     % (["info", "warn", "error"][i % 3], 1000 + 7 * i, [200, 404, 500][i % 3], (i * 37) % 200,
        (i * 0x9E3779B97F4A7C15) & MASK64, i),
     [("detected_level", ["info", "warn", "error"][i % 3])] if i % 2 else [])
    for i in range(12)
]
json_lines[5] = (json_lines[5][0], "plain text kept whole", [])
logfmt_lines = [
    (NOW_NS + 5 * i, 'ts=2024-07-07T08:00:%02dZ level=%s caller=main.go:%d msg="req %d done" dur=%dms user=u%d'
     % (i, ["debug", "info"][i % 2], 40 + i % 3, i, 3 * i, i % 4), [])
    for i in range(10)
]
logfmt_lines.append((NOW_NS + 60, "", []))
for name, entries in [("columnar_json", json_lines), ("columnar_logfmt", logfmt_lines)]:
    body, n, lo, hi = columnar_block(entries)
    write("chunk_decode", name, b"\x04" + struct.pack("<Iqq", n, lo, hi) + body)


# The golden v2 chunk's first block as the encoder wrote it, unwrapped from its zstd frame
# (with the zstd command line tool, where installed).
def first_raw_block(chunk: bytes):
    dir_len = struct.unpack_from("<I", chunk, len(chunk) - 12)[0]
    entry = chunk[len(chunk) - 12 - dir_len:][:40]
    offset, length, _, lo, hi, n, _ = struct.unpack("<QIIqqII", entry)
    frame = chunk[offset:offset + length - 4]
    try:
        raw = subprocess.run(["zstd", "-dc"], input=frame, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return struct.pack("<Iqq", n, lo, hi) + raw


golden_block = first_raw_block(open(os.path.join(data_dir, "v2.chunk"), "rb").read())
if golden_block is not None:
    write("chunk_decode", "columnar_golden", b"\x04" + golden_block)

# Decoding only some parts: the mode byte's quotient by 5 picks them (1 lines only, 2
# metadata only, 3 timestamps only).
v2_chunk = open(os.path.join(data_dir, "v2.chunk"), "rb").read()
v1_chunk = open(os.path.join(data_dir, "v1.chunk"), "rb").read()
write("chunk_decode", "parts_v2_chunk_metadata_only", bytes([1 + 5 * 2]) + v2_chunk)
write("chunk_decode", "parts_v2_chunk_lines_only", bytes([1 + 5 * 1]) + v2_chunk)
write("chunk_decode", "parts_v1_chunk_metadata_only", bytes([1 + 5 * 2]) + v1_chunk)
body, n, lo, hi = columnar_block(json_lines)
write("chunk_decode", "parts_columnar_json_timestamps_only",
      bytes([4 + 5 * 3]) + struct.pack("<Iqq", n, lo, hi) + body)


# wal_replay: a real segment file (mode 0) and the same records for the framing mode (1).
def wal_str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<I", len(b)) + b


def wal_record(tenant, streams) -> bytes:
    out = bytes([1]) + wal_str(tenant) + struct.pack("<I", len(streams))
    for labels, entries in streams:
        out += struct.pack("<I", len(labels))
        for k, v in labels:
            out += wal_str(k) + wal_str(v)
        out += struct.pack("<I", len(entries))
        for ts, line, md in entries:
            out += struct.pack("<q", ts) + wal_str(line) + struct.pack("<I", len(md))
            for k, v in md:
                out += wal_str(k) + wal_str(v)
    return out


records = [
    wal_record(
        "fake",
        [
            (sorted(s["stream"].items()), [(int(v[0]), v[1], list(v[2].items()) if len(v) > 2 else []) for v in s["values"]])
            for s in small_streams[:2]
        ],
    ),
    wal_record("tenant-b", [([("app", "x")], [(NOW_NS, "hello", [("k", "v")]), (NOW_NS - 5, "older", [])])]),
]
segment = b"FWAL" + struct.pack("<I", 1)
for r in records:
    segment += struct.pack("<II", len(r), crc32c(r)) + r
write("wal_replay", "segment", b"\x00" + segment)
write("wal_replay", "segment_torn", b"\x00" + segment[:-7])
write("wal_replay", "records", b"\x01" + b"".join(struct.pack("<H", len(r)) + r for r in records))

total = sum(len(fs) for _, _, fs in os.walk(SEEDS))
print(f"wrote {total} seed files under {SEEDS}")
