#!/usr/bin/env python3
"""Rebuild third_party/{webrtc,rtc,rtc-dtls,rtc-sctp} from the published crates plus third_party/patches/.

Usage: scripts/vendor-webrtc.py [crate ...]  (all of them by default; the published crates
must be in ~/.cargo/registry, e.g. fetched by a scratch project that depends on them)

The copies keep only what a library build needs (src/, licences, README, a Cargo.toml
without examples, tests, benches and dev-dependencies); the patches are then applied with
`patch -p1`. Run it after bumping the versions below and commit the result.
"""
import glob, os, re, shutil, subprocess, sys

CRATES = {"webrtc": "0.21.1", "rtc": "0.21.1", "rtc-dtls": "0.21.1", "rtc-sctp": "0.21.1"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEST = os.path.join(ROOT, "third_party")
REGISTRY = os.path.expanduser(os.environ.get("CARGO_HOME", "~/.cargo")) + "/registry/src/*/"

def strip_manifest(text):
    out, skip = [], False
    for line in text.splitlines():
        header = re.match(r"^\[\[?([^\]]+)\]\]?\s*$", line)
        if header:
            name = header.group(1)
            skip = name in ("example", "test", "bench") or name.startswith("dev-dependencies") \
                or re.match(r"target\..*\.dev-dependencies", name) is not None
        if not skip:
            out.append(line)
    return "\n".join(out) + "\n"

for name, version in CRATES.items():
    if len(sys.argv) > 1 and name not in sys.argv[1:]:
        continue
    matches = glob.glob(f"{REGISTRY}{name}-{version}")
    if not matches:
        sys.exit(f"{name}-{version} is not in the cargo registry: run `cargo fetch` first")
    src, dst = matches[0], os.path.join(DEST, name)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(os.path.join(src, "src"), os.path.join(dst, "src"))
    for f in ("LICENSE-MIT", "LICENSE-APACHE", "README.md"):
        if os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), dst)
    with open(os.path.join(src, "Cargo.toml")) as f:
        manifest = strip_manifest(f.read())
    with open(os.path.join(dst, "Cargo.toml"), "w") as f:
        f.write(manifest)
    for patch in sorted(glob.glob(os.path.join(DEST, "patches", f"{name}-[0-9]*.patch"))):
        subprocess.run(["patch", "-p1", "-d", dst, "-i", patch], check=True)
        print(f"applied {os.path.basename(patch)} to {name}")
