# SPDX-License-Identifier: GPL-3.0-or-later
"""Make a small CA for tls_mode=provided in the acme scenario.

Writes into OUTDIR: root.pem (the trust anchor), chain.pem (leaf + intermediate,
what the user provides as tls_cert), key.pem (tls_key), intermediate.pem and
intermediate.key (the OCSP responder signs with them), and index.txt (the
responder's database, listing the leaf as valid). The leaf names an OCSP
responder, so nginx must staple its answers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cryptography import x509

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
import pki  # noqa: E402  tests/pki.py


def main(outdir: str, name: str, ocsp_url: str) -> int:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "chain.pem").exists():
        return 0
    root_key, inter_key, leaf_key = pki.key(), pki.key(), pki.key()
    root = pki.cert("Provided Test Root", root_key, ca=True)
    inter = pki.cert("Provided Test Intermediate", inter_key, "Provided Test Root", root_key, ca=True)
    leaf = pki.cert(name, leaf_key, "Provided Test Intermediate", inter_key,
                    san=[x509.DNSName(name)], ocsp=ocsp_url)
    serial = f"{leaf.serial_number:X}"
    serial = serial if len(serial) % 2 == 0 else "0" + serial
    expiry = leaf.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    files = {
        "root.pem": pki.pem(root),
        "chain.pem": pki.pem(leaf, inter),
        "key.pem": pki.key_pem(leaf_key),
        "intermediate.pem": pki.pem(inter),
        "intermediate.key": pki.key_pem(inter_key),
        "index.txt": f"V\t{expiry}\t\t{serial}\tunknown\t/O=pyfleet test/CN={name}\n",
    }
    for filename, content in files.items():
        path = out / filename
        path.write_text(content)
        os.chmod(path, 0o600 if filename.endswith((".key", "key.pem")) else 0o644)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
