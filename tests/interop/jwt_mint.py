"""Keys, JWKS and JWTs for Herald's OIDC tests, made with PyJWT + cryptography (an
implementation independent of Herald's).

  jwt_mint.py keys DIR     writes DIR/{rsa,ec,ed,rogue}.pem (private keys) and DIR/jwks.json
                           with the public rsa, ec and ed keys (kids "rsa", "ec", "ed"); the
                           rogue key is not published
  jwt_mint.py tokens DIR   reads a JSON list of specs on stdin and prints a JSON list of
                           tokens; a spec is {"key": "rsa"|"ec"|"ed"|"rogue"|"none"|"hmac",
                           "alg": "RS256", "kid": "rsa", "claims": {...}}; "exp_in" and
                           "nbf_in" in claims are seconds from now
  jwt_mint.py addkey DIR NAME   adds a new Ed25519 key NAME (kid NAME) to DIR/jwks.json
"""
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm


def private_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def public_jwk(key, kid):
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    jwk["kid"] = kid
    jwk["use"] = "sig"
    return jwk


def keys(directory):
    made = {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "ed": ed25519.Ed25519PrivateKey.generate(),
        "rogue": ed25519.Ed25519PrivateKey.generate(),
    }
    for name, key in made.items():
        with open(f"{directory}/{name}.pem", "wb") as f:
            f.write(private_pem(key))
    published = [public_jwk(made[k], k) for k in ("rsa", "ec", "ed")]
    with open(f"{directory}/jwks.json", "w") as f:
        json.dump({"keys": published}, f)


def addkey(directory, name):
    key = ed25519.Ed25519PrivateKey.generate()
    with open(f"{directory}/{name}.pem", "wb") as f:
        f.write(private_pem(key))
    with open(f"{directory}/jwks.json") as f:
        document = json.load(f)
    document["keys"].append(public_jwk(key, name))
    with open(f"{directory}/jwks.json.tmp", "w") as f:
        json.dump(document, f)
    import os

    os.replace(f"{directory}/jwks.json.tmp", f"{directory}/jwks.json")


def token(directory, spec):
    now = int(time.time())
    claims = dict(spec["claims"])
    if "exp_in" in claims:
        claims["exp"] = now + claims.pop("exp_in")
    if "nbf_in" in claims:
        claims["nbf"] = now + claims.pop("nbf_in")
    headers = {"kid": spec["kid"]} if spec.get("kid") else None
    if spec["key"] == "none":
        return jwt.encode(claims, None, algorithm="none", headers=headers)
    if spec["key"] == "hmac":
        return jwt.encode(claims, "a-shared-secret-of-32-bytes-long!", algorithm="HS256", headers=headers)
    key = load(f"{directory}/{spec['key']}.pem")
    return jwt.encode(claims, key, algorithm=spec["alg"], headers=headers)


def main():
    command, directory = sys.argv[1], sys.argv[2]
    if command == "keys":
        keys(directory)
    elif command == "addkey":
        addkey(directory, sys.argv[3])
    elif command == "tokens":
        specs = json.load(sys.stdin)
        print(json.dumps([token(directory, s) for s in specs]))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
