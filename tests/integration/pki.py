# A throw-away PKI made with the openssl command line at test time: a test CA,
# a rogue CA, server certificates (right and wrong host name, right and wrong
# issuer) and client certificates for mutual TLS. EC P-256 keys.
import os
import shutil
import subprocess

NAMES = ("ca", "rogue_ca", "server", "server_wrong_host", "server_rogue", "client", "client_rogue")


def openssl_available():
    return shutil.which("openssl") is not None


def _run(*args, cwd):
    subprocess.run(("openssl",) + args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _key(name, cwd):
    _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name + ".key", cwd=cwd)


def _ca(name, cn, cwd):
    _key(name, cwd)
    _run("req", "-x509", "-new", "-key", name + ".key", "-sha256", "-days", "2", "-subj", "/CN=" + cn,
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-out", name + ".pem", cwd=cwd)


def _leaf(name, cn, issuer, ext, cwd):
    _key(name, cwd)
    _run("req", "-new", "-key", name + ".key", "-subj", "/CN=" + cn, "-out", name + ".csr", cwd=cwd)
    with open(os.path.join(cwd, name + ".ext"), "w") as f:
        f.write(ext)
    _run("x509", "-req", "-in", name + ".csr", "-CA", issuer + ".pem", "-CAkey", issuer + ".key",
         "-CAcreateserial", "-days", "2", "-sha256", "-extfile", name + ".ext", "-out", name + ".pem", cwd=cwd)


def make_pki(directory):
    """Create the files in directory; returns {name: (cert_path, key_path)}."""
    _ca("ca", "OCPP Test CA", directory)
    _ca("rogue_ca", "Rogue CA", directory)
    server_ext = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    _leaf("server", "localhost", "ca", server_ext, directory)
    _leaf("server_wrong_host", "other.invalid", "ca", "subjectAltName=DNS:other.invalid\nextendedKeyUsage=serverAuth\n", directory)
    _leaf("server_rogue", "localhost", "rogue_ca", server_ext, directory)
    client_ext = "extendedKeyUsage=clientAuth\n"
    _leaf("client", "CP1", "ca", client_ext, directory)
    _leaf("client_rogue", "CP1", "rogue_ca", client_ext, directory)
    return {n: (os.path.join(directory, n + ".pem"), os.path.join(directory, n + ".key")) for n in NAMES}
