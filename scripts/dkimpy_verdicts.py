#!/usr/bin/env python3
"""Independent DKIM verdicts from dkimpy, for trove's cross-check test.

Usage: dkimpy_verdicts.py KEYFILE MESSAGE [MESSAGE...]
KEYFILE: lines of `selector._domainkey.domain TXT-value` (# comments), as `trove
verify-message --keys` reads. Prints one JSON object per message:
{"file": ..., "verdicts": [true/false per DKIM-Signature, top to bottom], "errors": [...]}.

dkimpy judges `x=` against the clock; trove judges it at the message's own Date. To
compare like with like, for a signature with `x=` the clock is set to the message's Date
(or its `t=`, if later) while dkimpy verifies it.
"""
import email.utils
import json
import re
import sys
import time

import dkim


def load_keys(path):
    keys = {}
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition(" ")
        if "#" in name:
            continue
        keys[name.rstrip(".").lower() + "."] = value.strip().encode()
    return keys


def message_date(raw):
    m = re.search(rb"(?im)^date:[ \t]*(.*(?:\r?\n[ \t].*)*)", raw.split(b"\n\n", 1)[0])
    if not m:
        return None
    try:
        return email.utils.parsedate_to_datetime(m.group(1).decode("ascii", "replace")).timestamp()
    except (TypeError, ValueError):
        return None


def main():
    keys = load_keys(sys.argv[1])

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return keys.get(name.lower())

    real_time = time.time
    for path in sys.argv[2:]:
        raw = open(path, "rb").read()
        when = message_date(raw)
        head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
        sigs = re.findall(rb"(?im)^dkim-signature:(.*(?:\n[ \t].*)*)", head)
        verdicts, errors = [], []
        for i, sig in enumerate(sigs):
            tags = dict(
                (k.strip(), v.strip())
                for k, _, v in (t.partition(b"=") for t in re.sub(rb"\s+", b"", sig).split(b";"))
            )
            # Only a signature with x= depends on the time it is judged at.
            if when is not None and b"x" in tags:
                signed = float(tags.get(b"t", b"0") or 0)
                clock = max(when, signed)
                time.time = lambda: clock
            try:
                verdicts.append(bool(dkim.DKIM(raw).verify(idx=i, dnsfunc=dnsfunc)))
                errors.append("")
            except Exception as e:  # dkimpy raises for malformed signatures and missing keys
                verdicts.append(False)
                errors.append(f"{type(e).__name__}: {e}")
            finally:
                time.time = real_time
        print(json.dumps({"file": path, "verdicts": verdicts, "errors": errors}))


if __name__ == "__main__":
    main()
