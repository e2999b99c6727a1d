# ruff: noqa: E402 (the imports follow the sys.path fix below)
"""DKIM signing speed: workers/channels/email/dkim.py against dkimpy, on the dispatch bench's email.

Run from the repo root: `.venv/bin/python bench/dkim.py` (a few seconds; BENCH_SIGNS sets
how many signatures each side makes, default 300).

The message is the 19.7 KB abandoned-cart email the dispatch bench sends, signed with a
fresh 2,048-bit RSA key over the headers the SMTP adapter signs. Measured in this process,
in alternating rounds so that load elsewhere on the machine hits both sides:
  - ours: DkimSigner.sign (key loaded once, canonicalization in byte operations, OpenSSL);
  - dkimpy: dkim.sign, what the adapter used before (key parsed and RSA done in Python);
  - floor: the RSA signature and body hash alone, which any signer must pay.
Check: dkimpy's verifier accepts our signature (exit status 1 if not).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import base64
import hashlib
import json
import os
import time
from collections.abc import Callable

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bench.dispatch_audience import prerendered_email
from workers.channels.email.dkim import DkimSigner
from workers.channels.email.smtp import DKIM_HEADERS

SIGNS = int(os.environ.get("BENCH_SIGNS", "300"))
ROUNDS = 3
ENV = {"SECRET_KEY": "bench", "RAPPORT_DATA_DIR": "/tmp", "MAIL_FROM": "Bench Shop <shop@shop.example>",
       "BASE_URL": "https://rapport.shop.example", "BOUNCE_DOMAIN": "bounces.shop.example"}


def rate(sign: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        sign()
    return count / (time.perf_counter() - started)


def main() -> int:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    raw, _envelope = prerendered_email(ENV)
    signer = DkimSigner(pem, selector="bench", domain="shop.example", headers=DKIM_HEADERS)
    present = [name.encode() for name in DKIM_HEADERS if f"\n{name}:".encode() in b"\n" + raw.split(b"\r\n\r\n")[0]]
    body = raw.partition(b"\r\n\r\n")[2]
    print(f"dkim bench: {len(raw):,}-byte email, 2,048-bit RSA key, {SIGNS:,} signatures a side a round, "
          f"{ROUNDS} rounds", flush=True)

    sides: dict[str, Callable[[], object]] = {
        "ours": lambda: signer.sign(raw),
        "dkimpy": lambda: dkim.sign(raw, b"bench", b"shop.example", pem, canonicalize=(b"relaxed", b"relaxed"),
                                    include_headers=present),
        "floor": lambda: (hashlib.sha256(body).digest(), key.sign(raw[:1024], padding.PKCS1v15(), hashes.SHA256())),
    }
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for _round in range(ROUNDS):
        for name, sign in sides.items():
            rates[name].append(rate(sign, SIGNS))
    best = {name: max(values) for name, values in rates.items()}
    for name, value in best.items():
        print(f"{name}: {value:,.0f} signatures/s ({1000 / value:.2f} ms each; rounds "
              + ", ".join(f"{v:,.0f}" for v in rates[name]) + ")", flush=True)

    record = f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}".encode()
    verified = bool(dkim.verify(signer.sign(raw), dnsfunc=lambda name, timeout=5: record))
    print(f"  check: dkimpy verifies our signature: {'OK' if verified else 'FAILED'}")
    print(json.dumps({"bench": "dkim", "message_bytes": len(raw), "signs_per_s": round(best["ours"]),
                      "dkimpy_signs_per_s": round(best["dkimpy"]), "floor_signs_per_s": round(best["floor"]),
                      "speedup_vs_dkimpy": round(best["ours"] / best["dkimpy"], 1),
                      "ratio_to_floor": round(best["ours"] / best["floor"], 2), "verified": verified}))
    return 0 if verified else 1


if __name__ == "__main__":
    sys.exit(main())
