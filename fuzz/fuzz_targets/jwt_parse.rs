//! The bearer-token and JWKS parsers on arbitrary bytes: each returns a value or an error,
//! never panics; a parsed token's signature check against every parsed key only fails.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    token: String,
    jwks: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let keys = herald::auth::jwks::KeySet::parse(&input.jwks);
    if let Ok(token) = herald::auth::jwt::parse(&input.token, 8192)
        && let Ok(keys) = keys
    {
        for key in keys.candidates(token.kid.as_deref(), token.algorithm) {
            let _ = token.verify(key);
        }
    }
});
