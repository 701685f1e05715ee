"""The webhook's TLS certificates: made, kept and renewed by the operator itself, or cert-manager's.

Self-made (the default): a CA (10 years) and a serving certificate for `<service>.<namespace>.svc` (and
its short and `cluster.local` forms; 1 year), kept in a `kubernetes.io/tls` Secret (`ca.crt`, `ca.key`,
`tls.crt`, `tls.key`) so every replica and restart serves the same chain. Checked every `CHECK_EVERY`:
the serving certificate is renewed when under `RENEW_BEFORE` of validity is left (or its names changed),
the CA when under a year is left, the old CA staying in the bundle until it expires, so API servers that
still hold the old bundle keep trusting the serving certificate. The bundle is (re-)patched into the
webhook configurations on each check (a `helm upgrade` resets `caBundle`).

cert-manager (`--cert-dir`): the mounted `tls.crt`/`tls.key` are served and reloaded when they change;
`cert-manager.io/inject-ca-from` on the configurations carries the bundle, nothing is patched.
"""

from __future__ import annotations

import base64
import datetime
import logging
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from mesh.operator import kube

log = logging.getLogger("seldon-mesh.operator.certs")

CA_LIFETIME = datetime.timedelta(days=3650)
SERVING_LIFETIME = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=90)
CA_RENEW_BEFORE = datetime.timedelta(days=365)
CHECK_EVERY = 600.0  # seconds


@dataclass(frozen=True)
class Bundle:
    ca_crt: bytes  # PEM, the current CA first, then a still-valid previous one
    ca_key: bytes
    tls_crt: bytes
    tls_key: bytes


def service_names(service: str, namespace: str, cluster_domain: str = "cluster.local") -> list[str]:
    return [
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.{cluster_domain}",
        f"{service}.{namespace}",
        service,
    ]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(now: datetime.datetime, name: str = "seldon-mesh-webhook-ca") -> tuple[bytes, bytes]:
    """A self-signed CA: (certificate PEM, key PEM)."""
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def make_serving(
    ca_crt: bytes, ca_key: bytes, names: Sequence[str], now: datetime.datetime
) -> tuple[bytes, bytes]:
    """A serving certificate for `names` signed by the CA: (certificate PEM, key PEM)."""
    ca = x509.load_pem_x509_certificates(ca_crt)[0]
    signer = serialization.load_pem_private_key(ca_key, password=None)
    assert isinstance(signer, ec.EllipticCurvePrivateKey)
    key = _key()
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + SERVING_LIFETIME)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(signer, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def not_after(pem: bytes) -> datetime.datetime:
    return x509.load_pem_x509_certificates(pem)[0].not_valid_after_utc


def dns_names(pem: bytes) -> list[str]:
    cert = x509.load_pem_x509_certificates(pem)[0]
    try:
        return list(
            cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
                x509.DNSName
            )
        )
    except x509.ExtensionNotFound:
        return []


def renew(bundle: Bundle | None, names: Sequence[str], now: datetime.datetime) -> Bundle | None:
    """The bundle to store when `bundle` must change (missing, expiring, other names), else None."""
    if bundle is not None:
        try:
            ca_ok = not_after(bundle.ca_crt) - now > CA_RENEW_BEFORE
            serving_ok = not_after(bundle.tls_crt) - now > RENEW_BEFORE and set(
                dns_names(bundle.tls_crt)
            ) == set(names)
        except ValueError:  # unreadable: start over
            bundle = None
        else:
            if ca_ok and serving_ok:
                return None
            if ca_ok:
                tls_crt, tls_key = make_serving(bundle.ca_crt, bundle.ca_key, names, now)
                return Bundle(bundle.ca_crt, bundle.ca_key, tls_crt, tls_key)
    ca_crt, ca_key = make_ca(now)
    if bundle is not None:  # keep trusting the old CA while it lasts
        ca_crt += b"".join(
            c.public_bytes(serialization.Encoding.PEM)
            for c in x509.load_pem_x509_certificates(bundle.ca_crt)[:1]
            if c.not_valid_after_utc > now
        )
    tls_crt, tls_key = make_serving(ca_crt, ca_key, names, now)
    return Bundle(ca_crt, ca_key, tls_crt, tls_key)


def ssl_context(tls_crt: bytes, tls_key: bytes, context: ssl.SSLContext | None = None) -> ssl.SSLContext:
    """A server context serving this certificate (an existing one is reloaded in place: new
    connections get the new certificate)."""
    context = context or ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory() as folder:
        crt, key = Path(folder) / "tls.crt", Path(folder) / "tls.key"
        crt.write_bytes(tls_crt)
        key.write_bytes(tls_key)
        key.chmod(0o600)
        context.load_cert_chain(crt, key)
    return context


class SecretStore:
    """The bundle in a Secret of the operator's namespace."""

    def __init__(self, api: AsyncClient, namespace: str, name: str) -> None:
        self.api, self.namespace, self.name = api, namespace, name

    async def load(self) -> Bundle | None:
        try:
            secret = kube.as_dict(await self.api.get(kube.secret(), self.name, namespace=self.namespace))
        except ApiError as error:
            if kube.is_not_found(error):
                return None
            raise
        data = secret.get("data") or {}
        try:
            values = [base64.b64decode(data[k]) for k in ("ca.crt", "ca.key", "tls.crt", "tls.key")]
        except (KeyError, ValueError):
            return None
        return Bundle(*values)

    async def save(self, bundle: Bundle) -> None:
        data = {"ca.crt": bundle.ca_crt, "ca.key": bundle.ca_key}
        data |= {"tls.crt": bundle.tls_crt, "tls.key": bundle.tls_key}
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "type": "kubernetes.io/tls",
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
        await self.api.apply(kube.secret()(body), field_manager="seldon-mesh-webhook", force=True)


async def patch_ca_bundle(api: AsyncClient, configs: Sequence[str], ca_crt: bytes) -> None:
    """Put the CA bundle into every webhook of the named configurations (validating or mutating)."""
    encoded = base64.b64encode(ca_crt).decode()
    for name in configs:
        for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
            resource = kube.cluster_resource("admissionregistration.k8s.io/v1", kind)
            try:
                config = kube.as_dict(await api.get(resource, name))
            except ApiError as error:
                if kube.is_not_found(error):
                    continue
                raise
            webhooks = config.get("webhooks") or []
            if all((w.get("clientConfig") or {}).get("caBundle") == encoded for w in webhooks):
                break
            for webhook in webhooks:
                webhook.setdefault("clientConfig", {})["caBundle"] = encoded
            await api.patch(resource, name, {"webhooks": webhooks}, patch_type=PatchType.MERGE)
            log.info("patched caBundle into %s %s", kind, name)
            break
        else:
            log.warning("webhook configuration %s not found (yet): caBundle not patched", name)
