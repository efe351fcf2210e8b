#!/usr/bin/env python3
"""Verifies a JWT with PyJWT against a JWKS URL (as any OIDC relying party would).

usage: verify_jwt.py JWKS_URL ISSUER AUDIENCE TOKEN
Prints the verified claims as JSON; exits 1 with the reason on stderr when verification fails.
"""
import json
import sys

import jwt

jwks_url, issuer, audience, token = sys.argv[1:5]
try:
    key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=["EdDSA"],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "sub", "aud"]},
    )
except Exception as e:  # any failure is a failed verification, reported to the test
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
print(json.dumps(claims))
