"""Certificates, kubeconfigs, discovery hashes and the certificate-key cipher (TEST DOUBLE).

Written against the cryptography API available in Debian 12 (python3-cryptography 38),
because the lab's machine images run this code with the distribution's Python.
"""
import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import os

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ONE_YEAR = datetime.timedelta(days=365)
TEN_YEARS = datetime.timedelta(days=3650)

# the files kubeadm shares between control planes through the kubeadm-certs Secret
SHARED_CERT_FILES = (
    "ca.crt", "ca.key", "sa.key", "sa.pub",
    "front-proxy-ca.crt", "front-proxy-ca.key",
    "etcd/ca.crt", "etcd/ca.key",
)


def new_key(algorithm="RSA-2048"):
    if algorithm.startswith("RSA-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(algorithm[4:]))
    if algorithm == "ECDSA-P256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ECDSA-P384":
        return ec.generate_private_key(ec.SECP384R1())
    raise ValueError("unsupported encryption algorithm %r" % algorithm)


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def load_cert(data):
    return x509.load_pem_x509_certificate(data)


def load_key(data):
    return serialization.load_pem_private_key(data, password=None)


def _name(cn, orgs=()):
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _now():
    return datetime.datetime.utcnow().replace(microsecond=0)


def new_ca(cn, algorithm="RSA-2048", validity=TEN_YEARS):
    key = new_key(algorithm)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn)).issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def sign(ca_cert, ca_key, public_key, cn, orgs=(), server=False, client=False, sans=(),
         validity=ONE_YEAR):
    now = _now()
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, orgs)).issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if sans:
        names = []
        for san in sans:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                names.append(x509.DNSName(san))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def issue(ca_cert, ca_key, cn, orgs=(), algorithm="RSA-2048", **kwargs):
    key = new_key(algorithm)
    return sign(ca_cert, ca_key, key.public_key(), cn, orgs, **kwargs), key


def spki_hash(cert):
    """kubeadm's discovery-token-ca-cert-hash: sha256 over the DER SubjectPublicKeyInfo."""
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def kubeconfig(server, ca_pem, user, cluster_name="kubernetes", cert_pem_data=None,
               key_pem_data=None, token=None):
    auth = {}
    if cert_pem_data is not None:
        auth["client-certificate-data"] = base64.b64encode(cert_pem_data).decode()
        auth["client-key-data"] = base64.b64encode(key_pem_data).decode()
    if token is not None:
        auth["token"] = token
    context = "%s@%s" % (user, cluster_name)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {
            "certificate-authority-data": base64.b64encode(ca_pem).decode(),
            "server": server}}],
        "contexts": [{"name": context, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": context,
        "preferences": {},
        "users": [{"name": user, "user": auth}],
    }


def dump_kubeconfig(cfg):
    return yaml.safe_dump(cfg, default_flow_style=False, sort_keys=False)


def read_kubeconfig(path):
    """Return (server, ca_pem, cert_pem, key_pem, token) of the current context."""
    with open(path) as handle:
        cfg = yaml.safe_load(handle)
    ctx_name = cfg["current-context"]
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])

    def _b64(value):
        return base64.b64decode(value) if value else None

    return (cluster["server"], _b64(cluster.get("certificate-authority-data")),
            _b64(user.get("client-certificate-data")), _b64(user.get("client-key-data")),
            user.get("token"))


# --- the certificate key: kubeadm encrypts the shared certificates with AES-GCM --------------

def new_certificate_key():
    return os.urandom(32).hex()


def encrypt_certs(certificate_key, files):
    aes = AESGCM(bytes.fromhex(certificate_key))
    out = {}
    for name, data in files.items():
        nonce = os.urandom(12)
        out[name] = base64.b64encode(nonce + aes.encrypt(nonce, data, None)).decode()
    return out


def decrypt_certs(certificate_key, blobs):
    aes = AESGCM(bytes.fromhex(certificate_key))
    out = {}
    for name, blob in blobs.items():
        raw = base64.b64decode(blob)
        out[name] = aes.decrypt(raw[:12], raw[12:], None)
    return out


# --- detached JWS over cluster-info (kubeadm's bootstrap signer) ------------------------------

def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws_sign(content, token_id, token_secret):
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    payload = _b64url(content.encode())
    signing_input = ("%s.%s" % (header, payload)).encode()
    sig = hmac.new(("%s.%s" % (token_id, token_secret)).encode(), signing_input, hashlib.sha256).digest()
    return "%s..%s" % (header, _b64url(sig))


def jws_verify(content, detached, token_id, token_secret):
    try:
        header, _empty, _sig = detached.split(".")
    except ValueError:
        return False
    expected = jws_sign(content, token_id, token_secret)
    return hmac.compare_digest(expected, detached) and header == expected.split(".")[0]
