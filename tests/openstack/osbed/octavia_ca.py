"""Make the certificate authority Octavia's flows sign amphora certificates with.

Run by the bed's Python (which has ``cryptography``, an Octavia dependency) as
``python octavia_ca.py DIRECTORY``: writes ``ca.pem`` and ``ca.key`` there. No
amphora ever uses a certificate on the bed, but the create-load-balancer flow
signs one for each amphora it plans, as on a real cloud, and fails without a CA.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def make_ca(directory: Path) -> None:
    """A self-signed CA valid for ten years (the bed lives for hours)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "osbed octavia CA")])
    now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 - runs on 3.10 too
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path = directory / "ca.key"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    (directory / "ca.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


if __name__ == "__main__":
    make_ca(Path(sys.argv[1]))
